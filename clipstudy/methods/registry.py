"""The method registry: `clipstudy ls methods` lists it and the tests iterate over it.

Each method module registers itself here when `clipstudy.methods` imports it.
"""

from clipstudy.errors import ConfigError
from clipstudy.registry import Registry

METHODS: Registry = Registry("method", ConfigError)
