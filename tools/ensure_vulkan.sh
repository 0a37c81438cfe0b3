#!/usr/bin/env bash
# Make sure a Vulkan driver is present before anything is built: on a machine without a GPU,
# Mesa's lavapipe runs whet's kernels on the CPU. Shared by `make demo`, `make test` and
# `.ci/run`, so a newcomer's first command never builds for minutes and then stops with
# "no usable GPU adapter".
#
# - A Vulkan loader plus at least one ICD already installed: nothing to do.
# - Otherwise, as root on Debian/Ubuntu with apt: install mesa-vulkan-drivers + libvulkan1.
#   On Debian bookworm the lavapipe of bookworm-backports (Mesa 25) is preferred: measured here it
#   runs our matmul kernels 1.3x-8x faster than bookworm's Mesa 22.3. The backports suite is added
#   for the SAME mirror the machine's own apt sources already use (nothing is hard-coded here).
# - Otherwise: stop at once and print the exact command to run.
#
# WHET_PREFER_BACKPORTS=1 (what .ci/run sets) also swaps an installed stable lavapipe for the
# backports one; a plain `make` leaves a working driver alone.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

have_vulkan() {
  # No pipes: under pipefail, `grep -q` closing early would fail the producer.
  local libs icds
  libs=$(ldconfig -p 2>/dev/null || true)
  case "$libs" in *libvulkan.so.1*) ;; *) return 1 ;; esac
  icds=$(find /usr/share/vulkan/icd.d /etc/vulkan/icd.d -name '*.json' 2>/dev/null || true)
  [ -n "$icds" ]
}

lavapipe_version() {
  dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true
}

can_apt() {
  command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]
}

codename() {
  (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
}

# The mirror URIs this machine's apt already uses for its main suite, from both source formats
# (deb822 *.sources and one-line *.list). Only URIs whose suites include the release codename
# itself are taken, so the security mirror is not asked for backports.
configured_mirrors() {
  local code=$1
  {
    # deb822: blocks separated by blank lines, fields "URIs:" and "Suites:".
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk -v code="$code" '
        BEGIN { RS = ""; FS = "\n" }
        {
          uris = ""; suites = ""; enabled = 1
          for (i = 1; i <= NF; i++) {
            if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
            if ($i ~ /^Suites:/) { suites = $i; sub(/^Suites:[ \t]*/, "", suites) }
            if ($i ~ /^Enabled:[ \t]*no/) { enabled = 0 }
          }
          n = split(suites, s, /[ \t]+/)
          for (j = 1; j <= n; j++) if (enabled && s[j] == code) { print uris; break }
        }' "$f"
    done
    # one-line format: "deb [opts] URI SUITE COMPONENTS..."
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      awk -v code="$code" '
        $1 == "deb" {
          i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
          if ($(i + 1) == code) print $i
        }' "$f"
    done
  } | tr ' ' '\n' | grep -v '^$' | sort -u
}

backports_list=/etc/apt/sources.list.d/whet-backports.list

add_backports() {
  local code=$1 mirrors
  mirrors=$(configured_mirrors "$code")
  [ -n "$mirrors" ] || return 1
  : >"$backports_list"
  for m in $mirrors; do
    echo "deb $m $code-backports main" >>"$backports_list"
  done
}

install_lavapipe() {
  local code
  code=$(codename)
  if [ "$code" = bookworm ] && add_backports "$code"; then
    echo "vulkan: installing lavapipe from $code-backports"
    if apt-get update -qq && apt-get install -y -qq -t "$code-backports" mesa-vulkan-drivers libvulkan1 >/dev/null; then
      return 0
    fi
    echo "vulkan: backports unavailable; using the stable lavapipe"
    rm -f "$backports_list"
  fi
  echo "vulkan: installing Mesa's lavapipe (mesa-vulkan-drivers libvulkan1)"
  apt-get update -qq || true
  apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
}

if have_vulkan; then
  case "$(lavapipe_version)" in
    "" | *bpo*) ;;
    *)
      if [ "${WHET_PREFER_BACKPORTS:-0}" = 1 ] && can_apt && [ "$(codename)" = bookworm ]; then
        install_lavapipe
      fi
      ;;
  esac
else
  if ! can_apt; then
    echo "vulkan: no Vulkan driver found (whet needs one: a GPU driver, or Mesa's lavapipe on the CPU)." >&2
    if command -v apt-get >/dev/null; then
      echo "vulkan: run:  sudo apt-get install mesa-vulkan-drivers libvulkan1" >&2
    elif command -v dnf >/dev/null; then
      echo "vulkan: run:  sudo dnf install mesa-vulkan-drivers vulkan-loader" >&2
    elif command -v pacman >/dev/null; then
      echo "vulkan: run:  sudo pacman -S vulkan-swrast vulkan-icd-loader" >&2
    else
      echo "vulkan: install your GPU's Vulkan driver, or Mesa's lavapipe, and the Vulkan loader" >&2
    fi
    exit 1
  fi
  install_lavapipe
  if ! have_vulkan; then
    echo "vulkan: installing mesa-vulkan-drivers did not give a Vulkan driver" >&2
    exit 1
  fi
fi
v=$(lavapipe_version)
echo "vulkan: ok${v:+ (mesa-vulkan-drivers $v)}"
