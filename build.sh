#!/usr/bin/env bash
# Builds everything and installs the C SDK and the programs into dist/:
#   dist/lib/librefruntime.so, dist/include/refruntime.h, dist/lib/pkgconfig/refruntime.pc,
#   dist/lib/cmake/RefRuntime/ (find_package(RefRuntime) with CMAKE_PREFIX_PATH=dist),
#   dist/bin/refruntime-vhost-gpio (the vhost-user virtio-gpio back-end, NativeAOT).
# Usage: ./build.sh [--no-deps]   (--no-deps skips the apt-get check for the native toolchain)
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
dist="$root/dist"
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props)

if [[ "${1:-}" != "--no-deps" ]]; then
  "$root/scripts/ensure-deps.sh" build
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

echo "==> building the solution"
dotnet build RefRuntime.sln -c Release -nologo -v q

echo "==> publishing librefruntime.so (NativeAOT)"
pub="$root/build/native-publish"
rm -rf "$pub"
dotnet publish src/Native/RefRuntime.Native/RefRuntime.Native.csproj -c Release -nologo -v q -o "$pub"

echo "==> publishing refruntime-vhost-gpio (NativeAOT)"
pubgpio="$root/build/vhost-gpio-publish"
rm -rf "$pubgpio"
dotnet publish src/Native/RefRuntime.VhostGpio/RefRuntime.VhostGpio.csproj -c Release -nologo -v q -o "$pubgpio"

echo "==> installing the SDK into dist/"
rm -rf "$dist"
mkdir -p "$dist/lib/pkgconfig" "$dist/include" "$dist/lib/cmake/RefRuntime" "$dist/bin"
install -m 0755 "$pubgpio/refruntime-vhost-gpio" "$dist/bin/refruntime-vhost-gpio"
install -m 0755 "$pub/librefruntime.so" "$dist/lib/librefruntime.so"
install -m 0644 src/Native/RefRuntime.Native/include/refruntime.h "$dist/include/refruntime.h"
sed -e "s:@PREFIX@:$dist:" -e "s:@VERSION@:$version:" \
  src/Native/RefRuntime.Native/pkg/refruntime.pc.in > "$dist/lib/pkgconfig/refruntime.pc"
install -m 0644 src/Native/RefRuntime.Native/pkg/RefRuntimeConfig.cmake "$dist/lib/cmake/RefRuntime/"
cat > "$dist/lib/cmake/RefRuntime/RefRuntimeConfigVersion.cmake" <<CMK
set(PACKAGE_VERSION "$version")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
CMK
echo "==> dist/ ready: $(du -sh "$dist/lib/librefruntime.so" | cut -f1) librefruntime.so"
