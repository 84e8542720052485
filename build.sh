#!/usr/bin/env bash
# Builds everything and installs the C SDK:
#   PREFIX/lib/librefruntime.so.X.Y.Z (+ librefruntime.so.X -> SONAME, librefruntime.so -> dev link)
#   PREFIX/lib/librefruntime.a              (self-contained static archive: the runtime inside)
#   PREFIX/include/refruntime.h
#   PREFIX/lib/pkgconfig/refruntime.pc      (relocatable: paths relative to the .pc file;
#                                            refruntime-static.pc for the archive)
#   PREFIX/lib/cmake/RefRuntime/             (find_package(RefRuntime 0.1) -> RefRuntime::refruntime,
#                                            RefRuntime::refruntime_static)
#   PREFIX/bin/refruntime-vhost-gpio         (the vhost-user virtio-gpio back-end, NativeAOT)
#   PREFIX/bin/refruntime-vhost-blk          (the vhost-user virtio-blk back-end over a disk image, NativeAOT)
# PREFIX is dist/ in the checkout unless --prefix says otherwise; DESTDIR is honoured for staged
# installs (packaging). The version comes from one place: <Version> in Directory.Build.props.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)

usage() {
  cat <<'EOF'
Usage: ./build.sh [--prefix DIR] [--no-deps] [--help]

Builds the solution, publishes librefruntime.so with NativeAOT, makes librefruntime.a from the
same compiled object (a few seconds) and installs the C SDK.

  --prefix DIR   install into DIR (default: dist/ in this checkout). With a system prefix such as
                 /usr/local, run ldconfig afterwards (done for you when root); with any other
                 prefix, programs need -Wl,-rpath,DIR/lib or LD_LIBRARY_PATH (see README.md).
  --no-deps      skip the check for the native toolchain packages (gcc, zlib headers)
  --help         this text

Environment: DESTDIR=/staging installs into /staging/DIR (for packagers; the .pc and CMake files
are relocatable, so nothing records the staging path).
EOF
}

prefix="$root/dist"
deps=1
while (($#)); do
  case "$1" in
    --prefix) [[ $# -ge 2 ]] || { echo "error: --prefix needs a directory" >&2; exit 2; }
              prefix=$2; shift ;;
    --prefix=*) prefix=${1#--prefix=} ;;
    --no-deps) deps=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option '$1' (see ./build.sh --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $prefix == /* ]] || prefix="$(pwd)/$prefix"

version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props)
if [[ ! $version =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]]; then
  echo "error: <Version> in Directory.Build.props is '$version', not MAJOR.MINOR.PATCH" >&2
  exit 1
fi
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} patch=${BASH_REMATCH[3]}

if ((deps)); then
  "$root/scripts/ensure-deps.sh" build
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

step() { printf '==> %s\n' "$*"; }
verbosity=minimal # one line per project as it is built: progress, not a silent minute

step "building the solution ($version; the first build restores NuGet packages, about a minute)"
start=$SECONDS
dotnet build RefRuntime.sln -c Release -nologo -v "$verbosity"
step "built in $((SECONDS - start)) s"

step "publishing librefruntime.so with NativeAOT (about a minute the first time)"
start=$SECONDS
pub="$root/build/native-publish"
rm -rf "$pub"
# The build above already printed the "Project -> .dll" lines; show the rest (native code generation).
dotnet publish src/Native/RefRuntime.Native/RefRuntime.Native.csproj -c Release -nologo -v "$verbosity" -o "$pub" \
  | { grep -v -E -- ' -> .*\.dll$|^ *(Determining projects to restore|All projects are up-to-date for restore)' || true; }
step "published in $((SECONDS - start)) s"
"$root/scripts/make-static-archive.sh" "$pub"

step "publishing refruntime-vhost-gpio with NativeAOT"
start=$SECONDS
pubgpio="$root/build/vhost-gpio-publish"
rm -rf "$pubgpio"
dotnet publish src/Native/RefRuntime.VhostGpio/RefRuntime.VhostGpio.csproj -c Release -nologo -v "$verbosity" -o "$pubgpio"
step "published in $((SECONDS - start)) s"

step "publishing refruntime-vhost-blk with NativeAOT"
start=$SECONDS
pubblk="$root/build/vhost-blk-publish"
rm -rf "$pubblk"
dotnet publish src/Native/RefRuntime.VhostBlk/RefRuntime.VhostBlk.csproj -c Release -nologo -v "$verbosity" -o "$pubblk"
step "published in $((SECONDS - start)) s"

"$root/scripts/install-sdk.sh" "$pub" "$prefix"
mkdir -p "${DESTDIR:-}$prefix/bin"
install -m 0755 "$pubgpio/refruntime-vhost-gpio" "${DESTDIR:-}$prefix/bin/refruntime-vhost-gpio"
step "installed ${DESTDIR:-}$prefix/bin/refruntime-vhost-gpio"
install -m 0755 "$pubblk/refruntime-vhost-blk" "${DESTDIR:-}$prefix/bin/refruntime-vhost-blk"
step "installed ${DESTDIR:-}$prefix/bin/refruntime-vhost-blk"

if [[ -z ${DESTDIR:-} && $prefix != "$root/dist" && $(id -u) -eq 0 ]] && command -v ldconfig >/dev/null \
   && ldconfig -v -N 2>/dev/null | grep -q "^$prefix/lib:"; then
  ldconfig   # a directory the dynamic loader searches: refresh its cache
fi
