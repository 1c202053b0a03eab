# Sourced (not executed) by MariaDB's entrypoint on the first start with an empty data volume, after the root
# password is set: one database and one account per service, each allowed only its own database. Passwords come
# from Secret vidmp3-dev-data (environment of the mysql container) and are hex, so they need no quoting.
for service in users media jobs notifier; do
  case "$service" in
    users) password="$USERS_DB_PASSWORD" ;;
    media) password="$MEDIA_DB_PASSWORD" ;;
    jobs) password="$JOBS_DB_PASSWORD" ;;
    notifier) password="$NOTIFIER_DB_PASSWORD" ;;
  esac
  docker_process_sql --database=mysql <<EOSQL
CREATE DATABASE IF NOT EXISTS vidmp3_${service} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'vidmp3_${service}'@'%' IDENTIFIED BY '${password}';
GRANT ALL PRIVILEGES ON vidmp3_${service}.* TO 'vidmp3_${service}'@'%';
EOSQL
done
