#!/usr/bin/env bash
# Builds the Debian package: target/debian/ftwall_<version>-1_<arch>.deb (path printed last).
#   usage: packaging/build-deb.sh        (installs cargo-deb with `cargo install` if it is missing)
# Steps: release build, man pages into target/man/ (`ftwall man --dir`, gzipped), shell completions
# into target/completions/, `cargo deb --no-build` (which adds packaging/debian/changelog).
# Honours CARGO_TARGET_DIR; extra arguments go to `cargo build` (e.g. --locked).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "build-deb: installing cargo-deb" >&2
    cargo install cargo-deb --locked --version '^3.8'
fi

target_dir=${CARGO_TARGET_DIR:-target}
cargo build --release --bin ftwall "$@"

# cargo-deb's asset paths are relative to the crate ("target/man/..."), whatever the target dir.
man_dir=target/man
rm -rf "$man_dir"
"$target_dir/release/ftwall" man --dir "$man_dir"
gzip -9n "$man_dir"/*.8 "$man_dir"/*.7 "$man_dir"/*.5

completions_dir=target/completions
rm -rf "$completions_dir" && mkdir -p "$completions_dir"
"$target_dir/release/ftwall" completions bash > "$completions_dir/ftwall.bash"
"$target_dir/release/ftwall" completions zsh > "$completions_dir/_ftwall"
"$target_dir/release/ftwall" completions fish > "$completions_dir/ftwall.fish"

# --strip: the release profile splits its line tables into ftwall.dwp already; strip the symbol
# table too, as Debian packages do.
deb=$(cargo deb --no-build --strip | tail -n 1)
[ -f "$deb" ] || { echo "build-deb: cargo deb did not report a .deb (got: $deb)" >&2; exit 1; }
echo "$deb"
