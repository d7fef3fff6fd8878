/*
 * unit_tlog: the transparency log's proofs and checkpoint notes cross-checked against an
 * independent implementation, Go's golang.org/x/mod/sumdb/tlog and sumdb/note
 * (tests/go/tlogcheck, built offline from Debian's golang-golang-x-mod-dev):
 *   - every tree size 1..64: the root, the inclusion proof of every index and the
 *     consistency proof of every (from, to) pair, generated and verified by brk_merkle, then
 *     verified by tlog.CheckRecord / CheckTree and compared hash for hash with
 *     tlog.ProveRecord / ProveTree over tlog's own tree of the same leaves;
 *   - a checkpoint note signed by brk_note opens with note.NewVerifier / note.Open, under the
 *     verifier key brk_note_verifier_key writes, which is the one note.NewEd25519VerifierKey
 *     derives; the same note with one byte changed does not open.
 */
#include "tst_check.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_merkle.h"
#include "brk_note.h"
#include "banned.h"

#define MAX_N 64
#define CMD_MAX 4096

static char TMP[64];
static char BIN[128];

/* Builds tests/go/tlogcheck into TMP (offline: GOPATH is Debian's Go source tree). */
static void go_build(void)
{
    char cmd[CMD_MAX];
    const char *src = getenv("GSAP_SOURCE_DIR");
    ck_assert_ptr_nonnull(src);
    snprintf(BIN, sizeof BIN, "%s/tlogcheck", TMP);
    snprintf(cmd, sizeof cmd,
             "cd '%s/tests/go/tlogcheck' && env -u GOFLAGS GO111MODULE=off "
             "GOPATH=/usr/share/gocode GOPROXY=off GOCACHE='%s/gocache' go build -o '%s' . 2>&1",
             src, TMP, BIN);
    ck_assert_msg(system(cmd) == 0, "go build of tests/go/tlogcheck failed (is golang-go and "
                                    "golang-golang-x-mod-dev installed? tools/deps.sh)");
}

/* Runs tlogcheck with args; its first output line into out (cap bytes); the exit status. */
static int go_run(const char *args, char *out, size_t cap)
{
    char cmd[CMD_MAX];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", BIN, args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
    return pclose(p);
}

static void setup(void)
{
    snprintf(TMP, sizeof TMP, "/tmp/unit_tlog-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(TMP));
    go_build();
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", TMP);
    ck_assert_int_eq(system(cmd), 0);
}

static void hexline(FILE *f, const brk_mhash_t *h, size_t n)
{
    char hex[2 * BRK_MERKLE_HASH_LEN + 1];
    for (size_t i = 0; i < n; i++) {
        brk_hex(h[i], BRK_MERKLE_HASH_LEN, hex);
        fprintf(f, "%s%s", i ? "," : "", hex);
    }
    fputc('\n', f);
}

START_TEST(proofs_match_go_tlog)
{
    brk_mhash_t leaves[MAX_N], roots[MAX_N + 1], proof[BRK_MERKLE_MAX_PROOF];
    char entries[MAX_N][BRK_CID_LEN + 1], hex[2 * BRK_CID_LEN + 1], path[128], out[512];
    size_t plen, lines = 0;

    snprintf(path, sizeof path, "%s/cross.txt", TMP);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < MAX_N; i++) {
        uint8_t d[BRK_SHA256_LEN];
        char dh[2 * BRK_SHA256_LEN + 1];
        brk_sha256(&i, sizeof i, d);
        brk_hex(d, sizeof d, dh);
        snprintf(entries[i], sizeof entries[i], "sha256:%s", dh);
        brk_merkle_leaf_hash(entries[i], BRK_CID_LEN, leaves[i]);
        brk_hex((const uint8_t *)entries[i], BRK_CID_LEN, hex);
        fprintf(f, "L %s\n", hex);
    }
    for (size_t n = 1; n <= MAX_N; n++) {
        brk_merkle_root(leaves, n, roots[n]);
        fprintf(f, "R %zu ", n);
        hexline(f, &roots[n], 1);
        lines++;
    }
    for (size_t n = 1; n <= MAX_N; n++) {
        for (size_t m = 0; m < n; m++) {
            ck_assert_int_eq(brk_merkle_inclusion_proof(leaves, n, m, proof, &plen), 0);
            ck_assert(brk_merkle_verify_inclusion(leaves[m], m, n, proof, plen, roots[n]));
            fprintf(f, "I %zu %zu ", n, m);
            hexline(f, proof, plen);
            lines++;
        }
        for (size_t m = 1; m <= n; m++) {
            ck_assert_int_eq(brk_merkle_consistency_proof(leaves, n, m, proof, &plen), 0);
            ck_assert(brk_merkle_verify_consistency(m, n, roots[m], roots[n], proof, plen));
            fprintf(f, "C %zu %zu ", n, m);
            hexline(f, proof, plen);
            lines++;
        }
    }
    ck_assert_int_eq(fclose(f), 0);
    /* 64 roots, 64*65/2 inclusion proofs, as many consistency proofs */
    ck_assert_uint_eq(lines, MAX_N + MAX_N * (MAX_N + 1));
    char args[256], want[64];
    snprintf(args, sizeof args, "cross '%s'", path);
    ck_assert_msg(go_run(args, out, sizeof out) == 0, "Go's tlog disagrees: %s", out);
    snprintf(want, sizeof want, "ok %zu", lines);
    ck_assert_str_eq(out, want);
    /* the check can fail: one altered hash in one proof line is caught */
    snprintf(args, sizeof args, "sed -i '0,/^I 5 3 /s/^I 5 3 ./I 5 3 f/' '%s'", path);
    ck_assert_int_eq(system(args), 0);
    snprintf(args, sizeof args, "cross '%s'", path);
    ck_assert_int_ne(go_run(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "inclusion 3 in 5"));
}
END_TEST

START_TEST(note_opens_in_go)
{
    brk_keyring_t *kr = NULL;
    char dir[128], name[BRK_NOTE_NAME_MAX + 1], vkey[BRK_NOTE_VKEY_MAX], note[BRK_NOTE_MAX];
    char path[160], args[1024], out[512], pub[64];
    brk_mhash_t root;

    snprintf(dir, sizeof dir, "%s/keys", TMP);
    ck_assert_int_eq(brk_keyring_load(dir, &kr), 0);
    ck_assert_int_eq(brk_note_key_name("broker+one.example", name), 0);
    ck_assert_str_eq(name, "broker-one.example");
    ck_assert_int_eq(brk_note_verifier_key(name, brk_keyring_public(kr, 0), vkey), 0);
    brk_sha256("root", 4, root);
    ck_assert_int_eq(brk_note_checkpoint(kr, name, "broker-one.example/acme", 42, root, note), 0);
    /* the body is exactly the C2SP checkpoint: origin, size, base64 root */
    char b64[64];
    brk_b64_std(root, sizeof root, b64);
    char body[256];
    snprintf(body, sizeof body, "broker-one.example/acme\n42\n%s\n\n\xe2\x80\x94 %s ", b64, name);
    ck_assert_int_eq(strncmp(note, body, strlen(body)), 0);
    snprintf(path, sizeof path, "%s/note", TMP);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(note, f);
    ck_assert_int_eq(fclose(f), 0);
    brk_b64url_encode(brk_keyring_public(kr, 0), BRK_ED25519_PUB_LEN, pub);
    snprintf(args, sizeof args, "note '%s' '%s' '%s' '%s'", vkey, path, name, pub);
    ck_assert_msg(go_run(args, out, sizeof out) == 0, "note does not open in Go: %s", out);
    snprintf(body, sizeof body, "ok broker-one.example/acme 42 %s", b64);
    ck_assert_str_eq(out, body);
    /* one byte of the size changed: the signature no longer holds */
    note[strlen("broker-one.example/acme\n")] = '5';
    f = fopen(path, "w");
    fputs(note, f);
    ck_assert_int_eq(fclose(f), 0);
    snprintf(args, sizeof args, "note '%s' '%s'", vkey, path);
    ck_assert_int_ne(go_run(args, out, sizeof out), 0);
    /* names and origins a note cannot carry */
    ck_assert_int_eq(brk_note_checkpoint(kr, "a b", "o", 1, root, note), BRK_EINVAL);
    ck_assert_int_eq(brk_note_checkpoint(kr, "a+b", "o", 1, root, note), BRK_EINVAL);
    ck_assert_int_eq(brk_note_checkpoint(kr, "a", "o\nx", 1, root, note), BRK_EINVAL);
    ck_assert_int_eq(brk_note_checkpoint(kr, "a", "", 1, root, note), BRK_EINVAL);
    brk_keyring_free(kr);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit_tlog");
    TCase *tc = tcase_create("tlog");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, proofs_match_go_tlog);
    tcase_add_test(tc, note_opens_in_go);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
