#!/usr/bin/env bash
# A local XRootD server for the tests and `make demo STORAGE=remote`: root:// and HTTP/WebDAV with server-side
# Adler-32, serving DIR/data on free loopback ports. Installs the server from Debian when missing.
#   local-server.sh start DIR [--tape] [--keytab]
#                               starts it and writes DIR/server.env (ROOT_URL, HTTP_URL, PID, DATA); started again
#                               in the same DIR it keeps its files and its ports. With --tape the path /tape is
#                               nearline: XRootD's file residency manager (frm_xfrd) migrates what is written there
#                               to the simulated robot tape-library.sh (library in DIR/library) and stages files back
#                               on `xrdfs prepare -s`; server.env gains TAPE_URL, TAPE_LIBRARY and FRM_PID. With
#                               --keytab root:// asks every client for XRootD's simple shared secret (sss): the
#                               client's keytab is DIR/client.keytab (KEYTAB in server.env)
#                               With --netns NS ADDRESS it runs on a host of the tests' network (tests/network/hosts.sh):
#                               in network namespace NS, serving at ADDRESS to any host of that private network
#   local-server.sh stop DIR    stops it (idempotent)
#   local-server.sh kill DIR    kills it at once (SIGKILL), as a crash would
set -euo pipefail

command=${1:?usage: local-server.sh start|stop|kill DIR}
dir=${2:?usage: local-server.sh start|stop|kill DIR}
tape=false
keytab=false
namespace=
address=127.0.0.1
set -- "${@:3}"
while [ $# -gt 0 ]; do
  case "$1" in
    --tape) tape=true ;;
    --keytab) keytab=true ;;
    --netns)
      namespace=${2:?usage: --netns NS ADDRESS}
      address=${3:?usage: --netns NS ADDRESS}
      shift 2
      ;;
    *) echo "local-server.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
# On a host of the tests' network the server runs inside its namespace; on this machine, as it is.
on_host=()
if [ -n "$namespace" ]; then on_host=(ip netns exec "$namespace"); fi
here=$(cd "$(dirname "$0")" && pwd)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

case "$command" in
  start)
    bash "$here/../ensure-debian-package.sh" /usr/bin/xrootd xrootd-server
    bash "$here/../ensure-debian-package.sh" /usr/bin/xrdcp xrootd-client
    bash "$here/../ensure-debian-package.sh" "/usr/lib/$(uname -m)-linux-gnu/libXrdHttp-5.so" xrootd-server-plugins
    if [ "$tape" = true ]; then
      # The simulated robot records each tape copy in an extended attribute of the file (setfattr).
      bash "$here/../ensure-debian-package.sh" /usr/bin/setfattr attr
    fi
    mkdir -p "$dir/data" "$dir/admin" "$dir/run"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/ports" ]; then
      read -r root_port http_port < "$dir/ports"
    else
      root_port=$(free_port)
      http_port=$(free_port)
      echo "$root_port $http_port" > "$dir/ports"
    fi
    cat > "$dir/xrootd.cfg" <<CONFIG
all.export /
oss.localroot $dir/data
all.adminpath $dir/admin
all.pidpath $dir/run
xrd.port $root_port
xrd.protocol XrdHttp:$http_port libXrdHttp.so
xrootd.chksum adler32
# Third-party copies: a server asked to copy from another (xrdcp --tpc) pulls the file with xrdcp itself.
ofs.tpc autorm pgm /usr/bin/xrdcp -f
CONFIG
    if [ -z "$namespace" ]; then
      # XRootD listens on every interface; on this machine only loopback connections are accepted (a host of the tests'
      # network has none but its private network's).
      echo "xrd.allow host localhost" >> "$dir/xrootd.cfg"
    fi
    if $tape; then
      mkdir -p "$dir/library/waiting" "$dir/data/tape"
      touch "$dir/library/calls" "$dir/library/mounts" "$dir/library/mounted" "$dir/library/drive.lock"
      printf '%s\n' "$dir/data" > "$dir/library/data-root"
      # The prepare plugin runs one program without arguments of its own: this one names the library.
      printf '#!/bin/sh\nexec %q %q prepare "$@"\n' "$here/tape-library.sh" "$dir/library" > "$dir/tape-prepare.sh"
      chmod 0755 "$dir/tape-prepare.sh"
      # The tape path first: the most specific export wins. Its files are migrated a second after their last change, two
      # transfers at a time (the robot's one drive takes them in turn, volume by volume), and a failed transfer is tried
      # again after TAPE_FAIL_HOLD_SECONDS. (With one transfer at a time, frm_xfrd 5.5 took no stage request at all.)
      sed -i "1i all.export /tape stage mig" "$dir/xrootd.cfg"
      cat >> "$dir/xrootd.cfg" <<CONFIG
oss.msscmd $here/tape-library.sh $dir/library
ofs.preplib libXrdOfsPrepGPI.so -admit stage,evict,query,cancel -run $dir/tape-prepare.sh
frm.xfr.copycmd in $here/tape-library.sh $dir/library recall \$LFN \$PFN
frm.xfr.copycmd out $here/tape-library.sh $dir/library migrate \$PFN \$LFN
frm.xfr.copymax 2
frm.xfr.migr.idlehold 1
oss.xfr deny ${TAPE_FAIL_HOLD_SECONDS:-10}
frm.xfr.migr.waittime ${TAPE_MIGRATION_SCAN_SECONDS:-2}
CONFIG
      printf 'all.adminpath %s\n' "$dir/admin" > "$dir/library/xfragent.cfg"
    fi
    if $keytab; then
      if [ ! -f "$dir/server.keytab" ]; then
        echo y | xrdsssadmin -k pipeline -u nobody -g nogroup add "$dir/server.keytab" >/dev/null 2>&1
        cp "$dir/server.keytab" "$dir/client.keytab"
        chmod 0600 "$dir/server.keytab" "$dir/client.keytab"
        if [ "$(id -u)" -eq 0 ]; then chown nobody "$dir/server.keytab"; fi
      fi
      cat >> "$dir/xrootd.cfg" <<CONFIG
xrootd.seclib libXrdSec.so
sec.protocol sss -s $dir/server.keytab
sec.protbind * only sss
CONFIG
    fi
    run_as=()
    if [ "$(id -u)" -eq 0 ]; then
      # XRootD refuses to serve as root: it runs as nobody, so its folders must be open to it.
      chmod 0777 "$dir" "$dir/data" "$dir/admin" "$dir/run"
      if $tape; then chmod -R a+rwX "$dir/library" "$dir/data/tape"; fi
      run_as=(-R nobody)
    fi
    # Once in hundreds of starts under load, Debian's xrootd 5.5 died of SIGSEGV before writing a line of its log. Such
    # a crash (a signal before serving) is kept in DIR/crashed-start.N and the start tried once more, saying so; a server
    # that fails on its own (a bad setting, a port taken) is reported at once.
    for attempt in 1 2; do
      "${on_host[@]}" setsid /usr/bin/xrootd -c "$dir/xrootd.cfg" -l "$dir/xrootd.log" "${run_as[@]}" </dev/null >"$dir/xrootd.out" 2>&1 &
      pid=$!
      deadline=$((SECONDS + 30))
      status=serving
      until curl -s -o /dev/null -I "http://$address:$http_port/"; do
        if ! kill -0 "$pid" 2>/dev/null; then
          status=0
          wait "$pid" || status=$?
          break
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then status=timeout; break; fi
        sleep 0.1
      done
      if [ "$status" = serving ]; then break; fi
      if [ "$attempt" = 1 ] && [ "$status" != timeout ] && [ "$status" -gt 128 ]; then
        mkdir -p "$dir/crashed-start.$$"
        cp "$dir"/xrootd.log* "$dir/xrootd.out" "$dir/crashed-start.$$/" 2>/dev/null || true
        echo "The XRootD server died of signal $((status - 128)) while starting (kept in $dir/crashed-start.$$); starting it once more." >&2
        continue
      fi
      echo "The XRootD server did not start (exit status $status); its log:" >&2
      tail -n 30 "$dir"/xrootd.log* "$dir/xrootd.out" >&2 || true
      kill -9 "$pid" 2>/dev/null || true
      exit 1
    done
    cat > "$dir/server.env" <<ENV
ROOT_URL=root://$address:$root_port
HTTP_URL=http://$address:$http_port
PID=$pid
DATA=$dir/data
ENV
    if $keytab; then echo "KEYTAB=$dir/client.keytab" >> "$dir/server.env"; fi
    if $tape; then
      frm_as=()
      if [ "$(id -u)" -eq 0 ]; then frm_as=(setpriv --reuid=nobody --regid=nogroup --clear-groups); fi
      "${on_host[@]}" setsid "${frm_as[@]}" /usr/bin/frm_xfrd -c "$dir/xrootd.cfg" -l "$dir/frm.log" </dev/null >"$dir/frm.out" 2>&1 &
      frm_pid=$!
      deadline=$((SECONDS + 30))
      until grep -q "initialization completed" "$dir/frm.log" 2>/dev/null; do
        if ! kill -0 "$frm_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
          echo "The file residency manager did not start; its log:" >&2
          tail -n 30 "$dir/frm.log" "$dir/frm.out" >&2 || true
          exit 1
        fi
        sleep 0.1
      done
      cat >> "$dir/server.env" <<ENV
TAPE_URL=root://$address:$root_port//tape
TAPE_LIBRARY=$dir/library
FRM_PID=$frm_pid
ENV
    fi
    echo "XRootD is serving $dir/data on root://$address:$root_port and http://$address:$http_port (pid $pid)." >&2
    ;;
  stop|kill)
    if [ -f "$dir/server.env" ]; then
      signal=TERM
      if [ "$command" = kill ]; then signal=KILL; fi
      for pid in $(sed -n 's/^\(FRM_\)\{0,1\}PID=//p' "$dir/server.env"); do
        if kill -s "$signal" "$pid" 2>/dev/null; then
          for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
          kill -9 "$pid" 2>/dev/null || true
        fi
      done
      rm -f "$dir/server.env"
    fi
    ;;
  *)
    echo "usage: local-server.sh start|stop|kill DIR" >&2
    exit 2
    ;;
esac
