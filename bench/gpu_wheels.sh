#!/usr/bin/env bash
# The wheels the GPU check needs that a bare CUDA machine with torch, torchvision, timm, peft, pandas,
# scikit-learn, typer and rich lacks, for Python 3.12 manylinux x86_64, into an ignored folder (default
# .whl/, which bench/gpu_check.py installs from with `pip install --no-index --target`).
#
#     bash bench/gpu_wheels.sh [FOLDER]
#
# The versions are uv.lock's, so the engine runs there with the packages it is tested with here.
set -euo pipefail
cd "$(dirname "$0")/.."
folder="${1:-.whl}"
PYTHON="${PYTHON:-python3}"
pinned() {  # NAME -> NAME==VERSION, as locked in uv.lock
    local version
    version=$(awk -v name="$1" '$0 == "name = \"" name "\"" {getline; gsub(/version = |"/, ""); print; exit}' uv.lock)
    [ -n "$version" ] || { echo "gpu_wheels.sh: $1 is not in uv.lock" >&2; exit 1; }
    echo "$1==$version"
}
packages=(open-clip-torch ftfy wcwidth kornia kornia-rs pydantic pydantic-core annotated-types typing-inspection typing-extensions)
specs=()
for name in "${packages[@]}"; do specs+=("$(pinned "$name")"); done
mkdir -p "$folder"
rm -f "$folder"/*.whl
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
"$PYTHON" -m pip --version >/dev/null 2>&1 || { echo "gpu_wheels.sh: needs pip ($PYTHON -m pip)" >&2; exit 1; }
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$folder" "${specs[@]}"
total=$(du -cb "$folder"/*.whl | tail -1 | cut -f1)
echo "gpu_wheels.sh: ${#specs[@]} wheels, $((total / 1024 / 1024)) MiB in $folder"
if [ "$total" -gt $((40 * 1024 * 1024)) ]; then
    echo "gpu_wheels.sh: over the 40 MiB budget" >&2
    exit 1
fi
