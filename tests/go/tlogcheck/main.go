// tlogcheck: an independent check of gsap-broker's transparency log with Go's
// golang.org/x/mod/sumdb/note and sumdb/tlog (Debian: golang-golang-x-mod-dev). Built offline
// with GO111MODULE=off GOPATH=/usr/share/gocode (tests/unit_tlog_go.c and tests/it_tlog.c).
//
//	tlogcheck note VERIFIER_KEY NOTE_FILE [NAME PUBKEY_B64URL]
//	    opens the signed note with note.NewVerifier/note.Open and prints
//	    "ok <origin> <size> <root base64>"; with NAME and the broker's raw public key (as
//	    /.well-known/gsap-broker.json publishes it), also checks that VERIFIER_KEY is the one
//	    note.NewEd25519VerifierKey derives from them.
//	tlogcheck inclusion ROOT_B64 SIZE INDEX ENTRY HASHES_B64_COMMA
//	    tlog.CheckRecord of the proof of entry (its bytes as given) at INDEX.
//	tlogcheck consistency FROM_ROOT_B64 FROM TO_ROOT_B64 TO HASHES_B64_COMMA
//	    tlog.CheckTree.
//	tlogcheck cross FILE
//	    FILE: "L <hex entry>" lines (the leaves, in order), then "R n hexroot",
//	    "I n m hexhash,..." and "C n m hexhash,..." lines made by the C code. Every root is
//	    compared with tlog.TreeHash, every proof verified with CheckRecord/CheckTree and
//	    compared hash for hash with tlog.ProveRecord/ProveTree. Prints "ok <lines checked>".
package main

import (
	"bufio"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(f string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlogcheck: "+f+"\n", a...)
	os.Exit(1)
}

func b64hash(s string) tlog.Hash {
	var h tlog.Hash
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != len(h) {
		fail("bad base64 hash %q", s)
	}
	copy(h[:], b)
	return h
}

func hexhash(s string) tlog.Hash {
	var h tlog.Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		fail("bad hex hash %q", s)
	}
	copy(h[:], b)
	return h
}

func list(s string, one func(string) tlog.Hash) []tlog.Hash {
	var out []tlog.Hash
	for _, f := range strings.Split(s, ",") {
		if f != "" {
			out = append(out, one(f))
		}
	}
	return out
}

func num(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fail("bad number %q", s)
	}
	return n
}

func cmdNote(args []string) {
	v, err := note.NewVerifier(args[0])
	if err != nil {
		fail("verifier key: %v", err)
	}
	if len(args) == 4 {
		pub, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(args[3], "="))
		if err != nil || len(pub) != ed25519.PublicKeySize {
			fail("bad public key %q", args[3])
		}
		want, err := note.NewEd25519VerifierKey(args[2], ed25519.PublicKey(pub))
		if err != nil || want != args[0] {
			fail("verifier key %q is not the broker key's %q", args[0], want)
		}
	}
	msg, err := os.ReadFile(args[1])
	if err != nil {
		fail("%v", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fail("note.Open: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		fail("checkpoint body is not origin, size, root: %q", n.Text)
	}
	size := num(lines[1])
	b64hash(lines[2])
	fmt.Printf("ok %s %d %s\n", lines[0], size, lines[2])
}

// A tree built with tlog's own storage layout from the leaves.
type tree struct{ stored []tlog.Hash }

func (t *tree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(t.stored)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = t.stored[x]
	}
	return out, nil
}

func (t *tree) add(n int64, entry []byte) {
	hs, err := tlog.StoredHashes(n, entry, t)
	if err != nil {
		fail("StoredHashes: %v", err)
	}
	t.stored = append(t.stored, hs...)
}

func same(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func cmdCross(path string) {
	f, err := os.Open(path)
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	t := &tree{}
	var leaves [][]byte
	checked := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		switch fs[0] {
		case "L":
			b, err := hex.DecodeString(fs[1])
			if err != nil {
				fail("bad leaf %q", fs[1])
			}
			t.add(int64(len(leaves)), b)
			leaves = append(leaves, b)
			continue
		case "R":
			n := num(fs[1])
			th, err := tlog.TreeHash(n, t)
			if err != nil || th != hexhash(fs[2]) {
				fail("root of size %d: C %s, tlog %s (%v)", n, fs[2], hex.EncodeToString(th[:]), err)
			}
		case "I":
			n, m := num(fs[1]), num(fs[2])
			p := list(strings.Join(fs[3:], ""), hexhash)
			th, _ := tlog.TreeHash(n, t)
			if err := tlog.CheckRecord(p, n, th, m, tlog.RecordHash(leaves[m])); err != nil {
				fail("inclusion %d in %d: tlog.CheckRecord: %v", m, n, err)
			}
			want, err := tlog.ProveRecord(n, m, t)
			if err != nil || !same(want, p) {
				fail("inclusion %d in %d: not the proof tlog.ProveRecord makes (%v)", m, n, err)
			}
		case "C":
			n, m := num(fs[1]), num(fs[2]) // tree n, older size m
			p := list(strings.Join(fs[3:], ""), hexhash)
			thn, _ := tlog.TreeHash(n, t)
			thm, _ := tlog.TreeHash(m, t)
			if err := tlog.CheckTree(p, n, thn, m, thm); err != nil {
				fail("consistency %d -> %d: tlog.CheckTree: %v", m, n, err)
			}
			want, err := tlog.ProveTree(n, m, t)
			if err != nil || !same(want, p) {
				fail("consistency %d -> %d: not the proof tlog.ProveTree makes (%v)", m, n, err)
			}
		default:
			fail("unknown line %q", sc.Text())
		}
		checked++
	}
	if err := sc.Err(); err != nil {
		fail("%v", err)
	}
	fmt.Printf("ok %d\n", checked)
}

func main() {
	a := os.Args[1:]
	switch {
	case len(a) >= 3 && a[0] == "note" && (len(a) == 3 || len(a) == 5):
		cmdNote(a[1:])
	case len(a) == 6 && a[0] == "inclusion":
		n, m := num(a[2]), num(a[3])
		if err := tlog.CheckRecord(list(a[5], b64hash), n, b64hash(a[1]), m,
			tlog.RecordHash([]byte(a[4]))); err != nil {
			fail("tlog.CheckRecord: %v", err)
		}
		fmt.Println("ok")
	case len(a) == 6 && a[0] == "consistency":
		if err := tlog.CheckTree(list(a[5], b64hash), num(a[4]), b64hash(a[3]), num(a[2]),
			b64hash(a[1])); err != nil {
			fail("tlog.CheckTree: %v", err)
		}
		fmt.Println("ok")
	case len(a) == 2 && a[0] == "cross":
		cmdCross(a[1])
	default:
		fail("usage: see the comment at the top of tests/go/tlogcheck/main.go")
	}
}
