#!/usr/bin/env bash
# "Works on my machine" cannot hide a set-up step: a fresh Debian bookworm machine with Node and nothing else (a
# container from the Dockerfile's base image, the stand-in of scripts/containers/podman.ts here) clones this
# repository's HEAD and runs the README's set-up: `npm ci`, then the first steps of `npm start` and `npm test`, which
# must install ffmpeg, Chromium, kubectl, openssl and podman from Debian by themselves; then the whole of `npm start`
# (on the host network, against the machine's MariaDB and RabbitMQ: ports 4000–4003 and 4011 must be free), which
# must answer through its gateway.
#
# With --test it then runs `.ci/run` there, to the end: what CI runs (`npm ci`, then the README's test command,
# `npm test`, in full, its container smoke test included). MariaDB and RabbitMQ are the host's, on the host network;
# the tests make their own databases and virtual hosts. `npm test` builds and runs images with podman, so the
# container runs --privileged (nested podman mounts overlays and /proc, debootstrap makes device nodes) and podman
# inside is set up by the project's own code as on any fresh machine (scripts/containers/podman.ts: runc, cgroupfs,
# no default ulimits, no pids limit; its overlay storage works nested on this kernel, as is). The stand-in base
# image is made inside too, with debootstrap, by the same code (the host's is not passed in): the honest fresh-machine
# path; inside, debootstrap and the Node stand-in, then the six images (11 min of builds) took ~14 min. The commit
# is HEAD's: commit first.
#
# The tests administer the broker with RabbitMQ's own CLI (a virtual host per system and test file, the smoke test's
# user, close_all_connections), so they run where `rabbitmqctl` reaches it: on the broker's machine, as .ci/run
# assumes (it starts rabbitmq-server there). Here the broker is the host's, so --test sets up that CLI in the
# container as it is on the host: Debian's rabbitmq-server installed with policy-rc.d saying 101 (nothing starts),
# the host's Erlang cookie and its rabbitmq-env.conf (read-only volumes). The cookie alone is not enough: the host's
# node is rabbit@localhost (rabbitmq-env.conf), and the CLI asked for rabbit@vm, failing with "TCP connection
# succeeded but Erlang distribution failed". Without the CLI, 45 of the 144 test files fail at once with
# `spawn rabbitmqctl ENOENT`.
#
#   scripts/containers/fresh-machine.sh         # as root, after npm run containers:build (which makes the base)
#   scripts/containers/fresh-machine.sh --test  # the same, then .ci/run in full: 30 min here
set -euo pipefail
cd "$(dirname "$0")/../.."
image=docker.io/library/node:20.20.2-bookworm-slim
test=0
case "${1:-}" in
  '') ;;
  --test) test=1 ;;
  *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac
podman image exists "$image" || { echo "no $image: run npm run containers:build first" >&2; exit 1; }

bundle=$(mktemp -d)
trap 'rm -rf "$bundle"' EXIT
git bundle create -q "$bundle/vidmp3.bundle" HEAD

privileged=()
if [ "$test" = 1 ]; then
  # The tests administer the host's broker with rabbitmqctl: its Erlang cookie and node settings come in read-only.
  privileged=(--privileged --volume=/var/lib/rabbitmq/.erlang.cookie:/host-rabbitmq/.erlang.cookie:ro)
  [ ! -f /etc/rabbitmq/rabbitmq-env.conf ] ||
    privileged+=(--volume=/etc/rabbitmq/rabbitmq-env.conf:/host-rabbitmq/rabbitmq-env.conf:ro)
fi
podman run --rm --network=host --user=root "${privileged[@]}" --env=TEST="$test" --volume="$bundle:/origin:ro" \
  "$image" bash -euo pipefail -c '
  step() { printf "\nfresh-machine: %s\n" "$*"; }
  for tool in ffmpeg ffprobe /usr/bin/chromium kubectl openssl podman; do
    ! command -v "$tool" >/dev/null || { echo "not a fresh machine: $tool is there" >&2; exit 1; }
  done
  step "git, to clone"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git curl procps >/dev/null
  git -c advice.detachedHead=false clone -q /origin/vidmp3.bundle /vidmp3 && cd /vidmp3
  step "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  step "npm start, first step"
  npx tsx scripts/prerequisites.ts run
  step "npm test, first step"
  npx tsx scripts/prerequisites.ts test
  step "npm test, the container build'"'"'s first step"
  npx tsx -e "import(\"./scripts/containers/podman.ts\").then((m) => m.ensurePodman())"
  step "installed:"
  ffmpeg -hide_banner -version | head -n 1
  /usr/bin/chromium --version 2>/dev/null | tail -n 1
  kubectl version --client 2>/dev/null | head -n 1
  openssl version
  podman --version
  cat /etc/containers/containers.conf | grep -E "runtime|cgroup_manager"
  step "npm start, the whole command: the gateway answers"
  npm start >/tmp/start.log 2>&1 &
  started=$!
  for _ in $(seq 180); do curl -sf http://127.0.0.1:4000/readyz >/dev/null && break; sleep 1; done
  curl -sf http://127.0.0.1:4000/readyz || { tail -n 40 /tmp/start.log >&2; exit 1; }
  echo
  answer=$(curl -sf -H "content-type: application/json" -d "{\"query\":\"{ me { id } }\"}" http://127.0.0.1:4000/graphql)
  echo "$answer"
  [ "$answer" = "{\"data\":{\"me\":null}}" ] || { tail -n 40 /tmp/start.log >&2; exit 1; }
  # Ctrl-C, to tsx only (it relays it to start.ts once). Signalled as well, start.ts would get it twice whenever
  # tsx waits more than its 30 ms for the child to say it has it (a loaded machine), and kill every service at once.
  pkill -INT -f "bin/tsx scripts/start.ts"
  wait "$started" || true
  grep -q "all services stopped" /tmp/start.log || { tail -n 20 /tmp/start.log >&2; exit 1; }
  step "as a user who is not root, the same steps stop with the command"
  useradd -m someone && cp -a /vidmp3 /home/someone/ && chown -R someone /home/someone/vidmp3
  apt-get remove -y -qq kubernetes-client >/dev/null
  if su someone -c "cd ~/vidmp3 && npx tsx scripts/prerequisites.ts test"; then echo "did not stop" >&2; exit 1; fi
  [ "$TEST" = 1 ] || exit 0
  step "RabbitMQ'"'"'s CLI, set up as on the broker'"'"'s machine (the host'"'"'s cookie and node settings; nothing started)"
  printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
  rm /usr/sbin/policy-rc.d
  install -o rabbitmq -g rabbitmq -m 400 /host-rabbitmq/.erlang.cookie /var/lib/rabbitmq/.erlang.cookie
  [ ! -f /host-rabbitmq/rabbitmq-env.conf ] || cp /host-rabbitmq/rabbitmq-env.conf /etc/rabbitmq/
  rabbitmqctl -q list_vhosts >/dev/null
  step ".ci/run, to the end: npm ci, then npm test in full (kubectl, removed above, comes back by npm test itself)"
  started=$(date +%s)
  .ci/run || { tail -n 30 "$(ls -t /root/.npm/_logs/*.log | head -n 1)" >&2; exit 1; }
  step ".ci/run passed in $(( ($(date +%s) - started) / 60 )) min"
'
if [ "$test" = 1 ]; then
  echo "fresh-machine: the README's set-up, run command and test command (.ci/run) work on a fresh machine"
else
  echo "fresh-machine: the README's set-up and run command work on a fresh machine"
fi
