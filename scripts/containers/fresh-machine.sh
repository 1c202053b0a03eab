#!/usr/bin/env bash
# "Works on my machine" cannot hide a set-up step: a fresh Debian bookworm machine with Node and nothing else (a
# container from the Dockerfile's base image, the stand-in of scripts/containers/podman.ts here) clones this
# repository's HEAD and runs the README's set-up: `npm ci`, then the first steps of `npm start` and `npm test`, which
# must install ffmpeg, Chromium, kubectl, openssl and podman from Debian by themselves; then the whole of `npm start`
# (on the host network, against the machine's MariaDB and RabbitMQ: ports 4000–4003 and 4011 must be free), which
# must answer through its gateway. (The rest of `npm test` needs a podman that can build and run containers, which
# a container here does not have.)
#
#   scripts/containers/fresh-machine.sh       # as root, after npm run containers:build (which makes the base)
set -euo pipefail
cd "$(dirname "$0")/../.."
image=docker.io/library/node:20.20.2-bookworm-slim
podman image exists "$image" || { echo "no $image: run npm run containers:build first" >&2; exit 1; }

bundle=$(mktemp -d)
trap 'rm -rf "$bundle"' EXIT
git bundle create -q "$bundle/vidmp3.bundle" HEAD

podman run --rm --network=host --user=root --volume="$bundle:/origin:ro" "$image" bash -euo pipefail -c '
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
  pkill -INT -f "scripts/start.ts"
  wait "$started" || true
  grep -q "all services stopped" /tmp/start.log || { tail -n 20 /tmp/start.log >&2; exit 1; }
  step "as a user who is not root, the same steps stop with the command"
  useradd -m someone && cp -a /vidmp3 /home/someone/ && chown -R someone /home/someone/vidmp3
  apt-get remove -y -qq kubernetes-client >/dev/null
  if su someone -c "cd ~/vidmp3 && npx tsx scripts/prerequisites.ts test"; then echo "did not stop" >&2; exit 1; fi
'
echo "fresh-machine: the README's set-up and run command work on a fresh machine"
