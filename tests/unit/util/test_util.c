#include <criterion/criterion.h>
#include <string.h>

#include "util/buf.h"
#include "util/doc.h"
#include "util/sha256.h"

Test(buf, limit_refuses_and_keeps_content)
{
	struct buf b;
	buf_init(&b, 8);
	cr_assert_eq(buf_adds(&b, "hello"), 0);
	cr_assert_eq(buf_adds(&b, "world"), -1);
	cr_assert_str_eq(b.data, "hello");
	cr_assert_eq(buf_addf(&b, "%d", 123), 0);
	cr_assert_str_eq(b.data, "hello123");
	buf_consume(&b, 5);
	cr_assert_str_eq(b.data, "123");
	buf_release(&b);
	cr_assert_eq(b.len, 0);
}

static void hex_of(const char *s, char out[65])
{
	struct sha256 h;
	unsigned char d[32];
	sha256_init(&h);
	sha256_update(&h, s, strlen(s));
	sha256_final(&h, d);
	sha256_hex(d, out);
}

Test(sha256, known_vectors)
{
	char hex[65];
	hex_of("", hex);
	cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hex_of("abc", hex);
	cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", hex);
	cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(doc, scalars_follow_core_schema)
{
	const char *y = "a: 1\nb: -2.5\nc: true\nd: ~\ne: '7'\nf: hello\ng: 0x10\nh: [1, x]\n";
	doc *d;
	struct err e;
	cr_assert_eq(doc_parse("t.yaml", y, strlen(y), &d, &e), 0, "%s", e.msg);
	json_t *r = doc_root(d, 0);
	cr_assert(json_is_integer(json_object_get(r, "a")));
	cr_assert(json_is_real(json_object_get(r, "b")));
	cr_assert(json_is_true(json_object_get(r, "c")));
	cr_assert(json_is_null(json_object_get(r, "d")));
	cr_assert(json_is_string(json_object_get(r, "e")));
	cr_assert_str_eq(json_string_value(json_object_get(r, "f")), "hello");
	cr_assert_eq(json_integer_value(json_object_get(r, "g")), 16);
	struct doc_pos p = doc_value_pos(d, r, "f");
	cr_assert_eq(p.line, 6);
	cr_assert_eq(p.col, 4);
	p = doc_key_pos(d, r, "h");
	cr_assert_eq(p.line, 8);
	cr_assert_eq(p.col, 1);
	p = doc_index_pos(d, json_object_get(r, "h"), 1);
	cr_assert_eq(p.line, 8);
	cr_assert_eq(p.col, 8);
	doc_free(d);
}

Test(doc, multiple_documents)
{
	const char *y = "kind: A\n---\nkind: B\n";
	doc *d;
	struct err e;
	cr_assert_eq(doc_parse("m.yaml", y, strlen(y), &d, &e), 0, "%s", e.msg);
	cr_assert_eq(doc_count(d), 2);
	cr_assert_str_eq(json_string_value(json_object_get(doc_root(d, 1), "kind")), "B");
	doc_free(d);
}

Test(doc, errors_name_the_position)
{
	struct {
		const char *text, *want;
	} cases[] = {
		{"a: 1\na: 2\n", "x.yaml:2:1: duplicate key 'a'"},
		{"a: &x 1\nb: *x\n", "x.yaml:2:4: aliases"},
		{"a: [1, 2\n", "x.yaml:2:1: invalid YAML"},
		{"? [1]\n: 2\n", "x.yaml:1:3: mapping keys must be plain strings"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		doc *d = NULL;
		struct err e;
		cr_assert_eq(doc_parse("x.yaml", cases[i].text, strlen(cases[i].text), &d, &e), -1);
		cr_assert(strncmp(e.msg, cases[i].want, strlen(cases[i].want)) == 0, "case %zu: got '%s'", i, e.msg);
	}
}

Test(doc, json_is_accepted)
{
	const char *j = "{\"a\": {\"b\": [1, 2.0, \"s\", null, false]}}";
	doc *d;
	struct err e;
	cr_assert_eq(doc_parse("x.json", j, strlen(j), &d, &e), 0, "%s", e.msg);
	json_t *b = json_object_get(json_object_get(doc_root(d, 0), "a"), "b");
	cr_assert_eq(json_array_size(b), 5);
	cr_assert(json_is_real(json_array_get(b, 1)));
	doc_free(d);
}
