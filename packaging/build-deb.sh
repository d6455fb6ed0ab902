#!/usr/bin/env bash
# Builds the Debian package from an infermon binary with dpkg-deb (Debian's
# own packager; no cargo tool to install):
#   packaging/build-deb.sh BINARY OUT_DIR   ->  OUT_DIR/infermon_<version>_<arch>.deb
# `make deb` passes the release binary; the install test the debug one.
# INFERMON_DEB_FAST=1 compresses quickly (gzip -1) for tests.
# Contents: /usr/bin/infermon, the systemd unit, /etc/infermon/infermon.yml
# (a conffile: the embedded default config with Debian paths), the default
# model under /usr/share/infermon/models, the man page generated from the
# CLI (`infermon man`), and maintainer scripts that create the `infermon`
# system user and /var/lib/infermon.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${1:?usage: build-deb.sh BINARY OUT_DIR}")
out=$(realpath -m "${2:?usage: build-deb.sh BINARY OUT_DIR}")
model="$root/models/all-MiniLM-L6-v2"
[ -f "$model/model.safetensors" ] || { echo "no model in $model: run make model" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg="$stage/infermon"

install -D -m 0755 "$bin" "$pkg/usr/bin/infermon"
install -D -m 0644 "$root/packaging/infermon.service" "$pkg/lib/systemd/system/infermon.service"

# The embedded default config, with the model and the store where the
# package puts them. Fails if those lines ever change, so the paths never
# silently point into a checkout.
install -d "$pkg/etc/infermon"
sed -e 's|^    path: models/all-MiniLM-L6-v2$|    path: /usr/share/infermon/models/all-MiniLM-L6-v2|' \
    -e 's|^  path: data/$|  path: /var/lib/infermon|' \
    "$root/config/infermon.yml" > "$pkg/etc/infermon/infermon.yml"
grep -q '^    path: /usr/share/infermon/models/all-MiniLM-L6-v2$' "$pkg/etc/infermon/infermon.yml"
grep -q '^  path: /var/lib/infermon$' "$pkg/etc/infermon/infermon.yml"
# Checked as infermon reads it, against the checkout's copy of the model
# (the installed one does not exist yet).
sed "s|/usr/share/infermon/models/all-MiniLM-L6-v2|$model|" "$pkg/etc/infermon/infermon.yml" > "$stage/check.yml"
"$bin" check "$stage/check.yml" >/dev/null

install -d "$pkg/usr/share/infermon/models"
cp -r "$model" "$pkg/usr/share/infermon/models/"
rm -f "$pkg/usr/share/infermon/models/all-MiniLM-L6-v2/.gitattributes"
chmod -R u=rwX,go=rX "$pkg/usr/share/infermon"

install -d "$pkg/usr/share/man/man1" "$pkg/usr/share/doc/infermon"
"$bin" man | gzip -9n > "$pkg/usr/share/man/man1/infermon.1.gz"
install -m 0644 "$root/packaging/README.md" "$pkg/usr/share/doc/infermon/README.service.md"
install -m 0644 "$root/packaging/debian/copyright" "$pkg/usr/share/doc/infermon/copyright"

install -d "$pkg/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "$root/packaging/debian/$script" "$pkg/DEBIAN/$script"
done
echo /etc/infermon/infermon.yml > "$pkg/DEBIAN/conffiles"
installed_kb=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$installed_kb/" \
    "$root/packaging/debian/control" > "$pkg/DEBIAN/control"

mkdir -p "$out"
deb="$out/infermon_${version}_${arch}.deb"
if [ -n "${INFERMON_DEB_FAST:-}" ]; then
  dpkg-deb --root-owner-group -Zgzip -z1 --build "$pkg" "$deb" >/dev/null
else
  dpkg-deb --root-owner-group --build "$pkg" "$deb" >/dev/null
fi
echo "$deb"
