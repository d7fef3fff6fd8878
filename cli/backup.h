/*
 * backup: `gsap-broker backup DIR` and `gsap-broker restore DIR`.
 *
 * A backup is a directory (mode 0700) of:
 *   gsap.dump      pg_dump --format=custom of the database: one snapshot (pg_dump's
 *                  repeatable-read transaction), so it is consistent while the broker serves;
 *   keys/          the signing keys (private: files 0600), copied after the dump, so every
 *                  key that signed something in the dump is there;
 *   MANIFEST.json  format, time, release, commit, schema version, and the SHA-256 of every file.
 * pg_dump rather than pg_basebackup: it needs no replication connection or pg_hba rule in the
 * embedded cluster, works the same against GSAP_DATABASE_URL, and restores into a newer
 * PostgreSQL; the price is a restore that rebuilds indexes. Main thread of a CLI process.
 */
#ifndef CLI_BACKUP_H
#define CLI_BACKUP_H

#define CLI_BACKUP_FORMAT "gsap-broker-backup/1"
#define CLI_BACKUP_DUMP "gsap.dump"
#define CLI_BACKUP_MANIFEST "MANIFEST.json"

/*
 * cli_backup: argv[0] "backup", argv[1] DIR (new, or an empty directory). Starts the embedded
 * cluster when it is not running (a running broker's is used as it is). Prints the manifest.
 * Returns the exit code: 0 done, 1 failed (DIR then holds no complete backup: no manifest),
 * 2 bad usage or DIR not empty.
 */
int cli_backup(int argc, char **argv);

/*
 * cli_restore: argv[0] "restore", argv[1] DIR. Checks the manifest and every file's SHA-256,
 * requires an empty GSAP_DATA_DIR (and an empty database), copies the keys, creates the
 * embedded cluster (or uses GSAP_DATABASE_URL), restores the dump in one transaction as the
 * schema owner, then applies newer migrations and grants the runtime role. Returns the exit
 * code: 0 done, 1 failed, 2 bad usage, a damaged backup or a data directory not empty.
 */
int cli_restore(int argc, char **argv);

#endif
