#!/usr/bin/env bash
# The simulated robot behind the local XRootD server's tape path. XRootD and its file residency manager (frm_xfrd)
# call it as they would a site's mass-storage tools; only the robot is simulated. The library lives in LIB:
#   LIB/volumes/<folder>/<file>   the tape copies: the files of one folder share a volume, like the in-process library
#   LIB/mounted                   the volume the single drive holds
#   LIB/mounts                    one line per mount: "read VOLUME" or "write VOLUME"
#   LIB/calls                     one line per call, for whoever wants to see what the robot was asked
#   LIB/refuse-migration          when present, every migration fails (a tape system that never takes the file)
#   LIB/xfragent.cfg              the configuration frm_xfragent uses to queue stage requests with frm_xfrd
# Calls (every value arrives as its own argument, never through a shell string):
#   tape-library.sh LIB statx|exists LFN       the oss.msscmd protocol: "0" and a stat line, or "-2" when not on tape
#   tape-library.sh LIB rm|mv|mkdir|dlist ...   namespace changes the server mirrors on tape
#   tape-library.sh LIB migrate PFN LFN         frm.xfr.copycmd out: copies the disk file to its volume and records the
#                                               tape copy in the file's attribute U.tape.copy, which clients read with
#                                               `xrdfs ... xattr PATH get tape.copy`
#   tape-library.sh LIB recall LFN PFN          frm.xfr.copycmd in: copies the tape copy back to disk
#   tape-library.sh LIB prepare [opts] -- REQID stage|evict|cancel|query FILE...
#                                               the prepare plugin's program (libXrdOfsPrepGPI): stage queues the
#                                               files with frm_xfrd; evict removes disk copies that are on tape
set -uo pipefail

lib=${1:?usage: tape-library.sh LIB OPERATION ...}
operation=${2:?usage: tape-library.sh LIB OPERATION ...}
shift 2
printf '%s %s\n' "$operation" "$*" >> "$lib/calls" 2>/dev/null || true
# A mount takes LIB/mount-seconds when that file exists (a test slows the robot down mid-run), else TAPE_MOUNT_SECONDS.
mount_seconds=$(cat "$lib/mount-seconds" 2>/dev/null || echo "${TAPE_MOUNT_SECONDS:-0.2}")

tape_copy() { printf '%s/volumes%s' "$lib" "$1"; }

volume_of() { dirname "$1"; }

# One drive: a transfer holds it; reaching another volume costs a mount. Like a tape system's scheduler, a transfer
# that would take the drive from a volume another waiting transfer still needs lets that one go first.
with_drive() {
  local purpose=$1 volume=$2 mounted ticket
  shift 2
  mkdir -p "$lib/waiting"
  ticket="$lib/waiting/$$"
  printf '%s\n' "$volume" > "$ticket"
  while true; do
    exec 9>>"$lib/drive.lock"
    flock 9
    mounted=$(cat "$lib/mounted" 2>/dev/null || true)
    if [ -n "$mounted" ] && [ "$mounted" != "$volume" ] && needed_elsewhere "$mounted" "$ticket"; then
      flock -u 9
      exec 9>&-
      sleep 0.05
      continue
    fi
    break
  done
  rm -f -- "$ticket"
  if [ "$mounted" != "$volume" ]; then
    sleep "$mount_seconds"
    printf '%s\n' "$volume" > "$lib/mounted"
    printf '%s %s\n' "$purpose" "$volume" >> "$lib/mounts"
  fi
  "$@"
  local status=$?
  flock -u 9
  exec 9>&-
  return "$status"
}

# Whether a live transfer other than this one waits for the volume.
needed_elsewhere() {
  local volume=$1 mine=$2 other
  for other in "$lib"/waiting/*; do
    [ -f "$other" ] && [ "$other" != "$mine" ] || continue
    if ! kill -0 "$(basename "$other")" 2>/dev/null; then rm -f -- "$other"; continue; fi
    if [ "$(cat "$other" 2>/dev/null)" = "$volume" ]; then return 0; fi
  done
  return 1
}

copy_to_tape() {
  local pfn=$1 lfn=$2 target
  target=$(tape_copy "$lfn")
  mkdir -p "$(dirname "$target")" || return 1
  cp -- "$pfn" "$target.writing" || return 1
  mv -f -- "$target.writing" "$target"
}

case "$operation" in
  statx|exists)
    copy=$(tape_copy "$1")
    if [ -f "$copy" ]; then
      echo 0
      if [ "$operation" = statx ]; then stat -c 'f rw-r--r-- 1 %u %g %X %Z %Y %s 4096 %b' -- "$copy"; fi
    else
      echo -2
    fi
    ;;
  rm)
    rm -f -- "$(tape_copy "$1")"
    echo 0
    ;;
  mv)
    old=$(tape_copy "$1")
    new=$(tape_copy "$2")
    if [ -f "$old" ]; then mkdir -p "$(dirname "$new")" && mv -f -- "$old" "$new"; fi
    echo 0
    ;;
  mkdir|dlist|truncate|chmod)
    echo 0
    ;;
  migrate)
    pfn=$1
    lfn=$2
    if [ -e "$lib/refuse-migration" ]; then
      echo "tape library: migration of $lfn refused" >&2
      exit 1
    fi
    size=$(stat -c %s -- "$pfn") || exit 1
    adler32=$(xrdadler32 "$pfn" | cut -d' ' -f1) || exit 1
    volume=$(volume_of "$lfn")
    with_drive write "$volume" copy_to_tape "$pfn" "$lfn" || exit 1
    # The disk file learns where its tape copy is, and of which bytes: a file changed since no longer matches.
    setfattr -n user.U.tape.copy -v "volume=$volume size=$size adler32=$adler32" -- "$pfn"
    ;;
  recall)
    lfn=$1
    pfn=$2
    copy=$(tape_copy "$lfn")
    [ -f "$copy" ] || { echo "tape library: $lfn is not on tape" >&2; exit 2; }
    with_drive read "$(volume_of "$lfn")" cp -- "$copy" "$pfn"
    ;;
  prepare)
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done
    shift
    request=${1:-}
    action=${2:-}
    shift 2 || true
    case "$action" in
      stage)
        # One request line for all the files, in the order given: frm_xfrd takes them first come, first served.
        printf '+ %s - 0 r %s\n' "$request" "$*" \
          | frm_xfragent -c "$lib/xfragent.cfg" >/dev/null 2>&1
        ;;
      evict)
        data=$(cat "$lib/data-root")
        for lfn in "$@"; do
          if [ -f "$(tape_copy "$lfn")" ]; then rm -f -- "$data$lfn"; fi
        done
        ;;
    esac
    exit 0
    ;;
  *)
    echo "tape library: unknown operation $operation" >&2
    exit 2
    ;;
esac
