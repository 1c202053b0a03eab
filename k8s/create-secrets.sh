#!/usr/bin/env bash
# Creates the Secrets the manifests reference, with fresh keys and passwords. Secrets that already exist are kept
# (re-running never rotates a key by accident; rotation is a deliberate step in docs/DEPLOY.md).
#
#   k8s/create-secrets.sh dev  [namespace]   # in-cluster MariaDB/MongoDB/RabbitMQ of overlays/dev (vidmp3-dev)
#   k8s/create-secrets.sh prod [namespace]   # external data services (vidmp3); needs their URLs, below
#
# prod reads the connection URLs of the data services from the environment (each account only needs its own
# database; see docs/DEPLOY.md for creating them):
#   USERS_MYSQL_URL  MEDIA_MYSQL_URL  JOBS_MYSQL_URL  NOTIFIER_MYSQL_URL   mysql://user:password@host:3306/vidmp3_<service>
#   MONGODB_URL                                        mongodb://user:password@host:27017/vidmp3_media
#   RABBITMQ_URL (or one per service: USERS_, MEDIA_, JOBS_, CONVERTER_ and NOTIFIER_RABBITMQ_URL)
#                                                      amqp://user:password@host:5672/vhost (one vhost for all)
#   RABBITMQ_MANAGEMENT_URL                            http://user:password@host:15672/vhost (KEDA's queue length)
#   SMTP_URL                                           smtp://user:password@host:587 or smtps://…:465 (the notifier)
#
# dev: CLUSTER_DOMAIN (default cluster.local) ends the RabbitMQ management host KEDA reaches from namespace keda.
# SMTP_URL is optional there: without it the notifier alone does not start (it requires a mail server in production).
# A Secret created before the notifier lacks its keys and is kept: docs/DEPLOY.md ("Upgrading") adds them.
# DRY_RUN=1 prints the Secrets as YAML instead of applying them (no cluster needed; the manifest tests use it).
set -euo pipefail

mode="${1:-}"
case "$mode" in
  dev) namespace="${2:-vidmp3-dev}" ;;
  prod) namespace="${2:-vidmp3}" ;;
  *)
    echo "usage: $0 dev|prod [namespace]" >&2
    exit 2
    ;;
esac
kubectl="${KUBECTL:-kubectl}"
dry_run="${DRY_RUN:-}"

exists() {
  [ -z "$dry_run" ] && "$kubectl" -n "$namespace" get secret "$1" >/dev/null 2>&1
}

# secret NAME --from-literal=... --from-file=...
secret() {
  local name="$1"
  shift
  if exists "$name"; then
    echo "secret/$name exists; kept" >&2
    return
  fi
  local yaml
  yaml="$("$kubectl" create secret generic "$name" -n "$namespace" "$@" --dry-run=client -o yaml)"
  if [ -n "$dry_run" ]; then
    printf -- '---\n%s\n' "$yaml"
  else
    printf '%s\n' "$yaml" | "$kubectl" apply -f -
  fi
}

# A key of an existing Secret, or nothing.
existing() {
  [ -z "$dry_run" ] || return 0
  "$kubectl" -n "$namespace" get secret "$1" -o "jsonpath={.data.$2}" 2>/dev/null | base64 -d 2>/dev/null || true
}

random() { openssl rand -hex "${1:-24}"; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The ES256 (P-256) signing key of the users service, PKCS#8 PEM.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/jwt.pem" 2>/dev/null

if [ "$mode" = dev ]; then
  # Passwords of the in-cluster data services; reused when vidmp3-dev-data exists, so URLs stay consistent.
  get() { local v; v="$(existing vidmp3-dev-data "$1")"; printf '%s' "${v:-$(random)}"; }
  mysql_root="$(get MYSQL_ROOT_PASSWORD)"
  users_db="$(get USERS_DB_PASSWORD)"
  media_db="$(get MEDIA_DB_PASSWORD)"
  jobs_db="$(get JOBS_DB_PASSWORD)"
  notifier_db="$(get NOTIFIER_DB_PASSWORD)"
  mongo_root="$(get MONGO_ROOT_PASSWORD)"
  media_mongo="$(get MEDIA_MONGO_PASSWORD)"
  rabbitmq="$(get RABBITMQ_PASSWORD)"
  secret vidmp3-dev-data \
    --from-literal=MYSQL_ROOT_PASSWORD="$mysql_root" \
    --from-literal=USERS_DB_PASSWORD="$users_db" \
    --from-literal=MEDIA_DB_PASSWORD="$media_db" \
    --from-literal=JOBS_DB_PASSWORD="$jobs_db" \
    --from-literal=NOTIFIER_DB_PASSWORD="$notifier_db" \
    --from-literal=MONGO_ROOT_PASSWORD="$mongo_root" \
    --from-literal=MEDIA_MONGO_PASSWORD="$media_mongo" \
    --from-literal=RABBITMQ_PASSWORD="$rabbitmq"
  USERS_MYSQL_URL="mysql://vidmp3_users:$users_db@mysql:3306/vidmp3_users"
  MEDIA_MYSQL_URL="mysql://vidmp3_media:$media_db@mysql:3306/vidmp3_media"
  JOBS_MYSQL_URL="mysql://vidmp3_jobs:$jobs_db@mysql:3306/vidmp3_jobs"
  NOTIFIER_MYSQL_URL="mysql://vidmp3_notifier:$notifier_db@mysql:3306/vidmp3_notifier"
  MONGODB_URL="mongodb://vidmp3_media:$media_mongo@mongodb:27017/vidmp3_media"
  RABBITMQ_URL="amqp://vidmp3:$rabbitmq@rabbitmq:5672"
  # KEDA's operator runs in namespace keda, where the short name rabbitmq does not resolve.
  rabbitmq_host="rabbitmq.$namespace.svc.${CLUSTER_DOMAIN:-cluster.local}"
  RABBITMQ_MANAGEMENT_URL="http://vidmp3:$rabbitmq@$rabbitmq_host:15672/%2F"
else
  missing=()
  for name in USERS_MYSQL_URL MEDIA_MYSQL_URL JOBS_MYSQL_URL NOTIFIER_MYSQL_URL MONGODB_URL RABBITMQ_MANAGEMENT_URL \
    SMTP_URL; do
    [ -n "${!name:-}" ] || missing+=("$name")
  done
  if [ -z "${RABBITMQ_URL:-}" ]; then
    for service in USERS MEDIA JOBS CONVERTER NOTIFIER; do
      name="${service}_RABBITMQ_URL"
      if [ -z "${!name:-}" ]; then
        missing+=("RABBITMQ_URL (or each service's <SERVICE>_RABBITMQ_URL)")
        break
      fi
    done
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "set these first (see the top of $0): ${missing[*]}" >&2
    exit 2
  fi
fi

secret vidmp3-users \
  --from-literal=MYSQL_URL="$USERS_MYSQL_URL" \
  --from-literal=RABBITMQ_URL="${USERS_RABBITMQ_URL:-$RABBITMQ_URL}" \
  --from-file=JWT_PRIVATE_KEY="$work/jwt.pem" \
  --from-literal=WEBHOOK_SECRET_KEY="$(openssl rand -base64 32)"
secret vidmp3-media \
  --from-literal=MYSQL_URL="$MEDIA_MYSQL_URL" \
  --from-literal=MONGODB_URL="$MONGODB_URL" \
  --from-literal=RABBITMQ_URL="${MEDIA_RABBITMQ_URL:-$RABBITMQ_URL}" \
  --from-literal=DOWNLOAD_SIGNING_KEY="$(random 32)"
secret vidmp3-jobs \
  --from-literal=MYSQL_URL="$JOBS_MYSQL_URL" \
  --from-literal=RABBITMQ_URL="${JOBS_RABBITMQ_URL:-$RABBITMQ_URL}"
secret vidmp3-converter \
  --from-literal=RABBITMQ_URL="${CONVERTER_RABBITMQ_URL:-$RABBITMQ_URL}"
notifier_smtp=()
if [ -n "${SMTP_URL:-}" ]; then
  notifier_smtp=(--from-literal=SMTP_URL="$SMTP_URL")
else
  echo "no SMTP_URL: the notifier will not start until vidmp3-notifier has one (docs/DEPLOY.md, \"Mail\")" >&2
fi
secret vidmp3-notifier \
  --from-literal=MYSQL_URL="$NOTIFIER_MYSQL_URL" \
  --from-literal=RABBITMQ_URL="${NOTIFIER_RABBITMQ_URL:-$RABBITMQ_URL}" \
  "${notifier_smtp[@]}"
secret vidmp3-internal \
  --from-literal=INTERNAL_API_TOKEN="$(random 32)"
secret vidmp3-keda-rabbitmq \
  --from-literal=host="$RABBITMQ_MANAGEMENT_URL"
