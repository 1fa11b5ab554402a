"""clipstudy."""
