/*
 * fuzz_deleg: libFuzzer target for the delegation rules (gov/gov_deleg.h): a POST
 * /delegations/ body through gov_deleg_request_parse, or its "aps_delegation" through
 * gov_deleg_aps_parse (signer: the key of the seed made with the Agent Passport System SDK,
 * tests/data/aps_delegation.json, so mutations start from a signature that verifies), then
 * gov_deleg_resolve against a fixed parent and gov_deleg_narrow.
 *
 * Properties: a refusal is a negative enum brk_err with a code and a message; a child that
 * gov_deleg_narrow accepts is, checked again here member by member, inside its parent (mask
 * subset, expiry, commands, spend, depth, prohibited superset); an AC that gov_deleg_allows
 * accepts under it is inside it. Any violation abort()s.
 */
#include "gov_deleg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

#define FUZZ_NOW 1800000000LL
#define FUZZ_SIGNER "2547300d9f147843600b467b160723ab78e54e7b59814a9c3f1b6b07ac240afb"
#define FUZZ_CID_D "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int has(const json_t *list, const char *s)
{
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x) if (strcmp(json_string_value(x), s) == 0) return 1;
    return 0;
}

static void check_err(int rc, const gov_err_t *e)
{
    if (rc >= 0 || e->code == NULL || e->msg[0] == '\0')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    gov_deleg_request_t q;
    gov_deleg_parent_t p;
    gov_deleg_scope_t c;
    gov_err_t e;
    size_t i;
    json_t *x;
    int rc;

    if (in == NULL || !json_is_object(in)) {
        json_decref(in);
        return 0;
    }
    memset(&c, 0, sizeof c);
    memset(&p, 0, sizeof p);
    p.s.caps = 0xff;
    p.s.accords = json_pack("[s,s]", "default", "ops");
    p.s.prohibited = json_pack("[s]", FUZZ_CID_D);
    p.s.expires = FUZZ_NOW + 100000LL * 3600;
    p.s.max_commands = 50;
    p.s.spend_limit = 1000;
    p.s.max_depth = 3;
    p.acs_issued = (long long)(size % 7);
    if ((rc = gov_deleg_request_parse(in, &q, &e)) != 0) {
        check_err(rc, &e);
        goto out;
    }
    if (q.aps != NULL && (rc = gov_deleg_aps_parse(q.aps, FUZZ_SIGNER, FUZZ_NOW, &q, &e)) != 0) {
        check_err(rc, &e);
        goto out; /* q cleared */
    }
    if (gov_deleg_resolve(&q, &p, FUZZ_NOW, &c) != 0)
        abort();
    rc = gov_deleg_narrow(&c, &p, &e);
    if (rc != 0) {
        check_err(rc, &e);
    } else {
        if ((c.caps & ~p.s.caps) != 0 || c.expires > p.s.expires ||
            c.max_commands > p.s.max_commands - p.acs_issued || c.spend_limit < 0 ||
            c.spend_limit > p.s.spend_limit || c.max_depth > p.s.max_depth || c.accords == NULL ||
            !has(c.prohibited, FUZZ_CID_D)) {
            fprintf(stderr, "fuzz_deleg: a widening child was accepted\n");
            abort();
        }
        json_array_foreach(c.accords, i, x) if (!has(p.s.accords, json_string_value(x))) abort();
        gov_deleg_use_t u = {"default", FUZZ_CID_D, FUZZ_CID_D, c.caps, c.expires};
        if (gov_deleg_allows(&c, &u, &e) == 0) /* the prohibited command */
            abort();
    }
    gov_deleg_scope_clear(&c);
    gov_deleg_request_clear(&q);
out:
    gov_deleg_scope_clear(&p.s);
    json_decref(in);
    return 0;
}
