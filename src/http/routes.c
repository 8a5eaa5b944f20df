#include <stdio.h>
#include <string.h>

#include "http/routes.h"

/* One segment of a path or a pattern: [s, s + n). */
struct seg {
	const char *s;
	size_t n;
};

/* Splits an absolute path into segments. Returns the count, or -1 when the path is not
 * absolute, has an empty segment or more than max segments. */
static int split(const char *path, struct seg *out, int max)
{
	if (path[0] != '/')
		return -1;
	int n = 0;
	const char *p = path + 1;
	if (!*p)
		return 0; /* "/" */
	for (;;) {
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (!len || n == max)
			return -1;
		out[n].s = p;
		out[n].n = len;
		n++;
		if (!e)
			return n;
		p = e + 1;
	}
}

static int is_capture(const struct seg *s)
{
	return s->n >= 3 && s->s[0] == '{' && s->s[s->n - 1] == '}';
}

static int is_rest(const struct seg *s)
{
	return is_capture(s) && s->s[1] == '*';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes a segment into dst. Returns 0, or -1 for a bad escape, a decoded '/' or
 * control character, or a value that does not fit. */
static int decode(const struct seg *s, char *dst, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < s->n; i++) {
		unsigned char c = (unsigned char)s->s[i];
		if (c == '%') {
			if (i + 2 >= s->n)
				return -1;
			int hi = hexval(s->s[i + 1]), lo = hexval(s->s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f || c == '/')
			return -1;
		if (o + 1 >= cap)
			return -1;
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	return 0;
}

enum match { NO_MATCH, MATCH, BAD_VALUE };

/* Matches path segments against a pattern; fills p on MATCH. */
static enum match match(const char *pattern, const struct seg *ps, int np, struct routes_params *p)
{
	struct seg pat[ROUTES_MAX_SEGMENTS];
	int n = split(pattern, pat, ROUTES_MAX_SEGMENTS);
	if (n < 0)
		return NO_MATCH;
	int rest = n > 0 && is_rest(&pat[n - 1]);
	if (rest ? np < n : np != n)
		return NO_MATCH;
	for (int i = 0; i < n; i++)
		if (!is_capture(&pat[i]) && (pat[i].n != ps[i].n || memcmp(pat[i].s, ps[i].s, pat[i].n)))
			return NO_MATCH;
	p->n = 0;
	for (int i = 0; i < n; i++) {
		if (!is_capture(&pat[i]))
			continue;
		if (p->n == ROUTES_MAX_PARAMS)
			return NO_MATCH;
		p->name[p->n] = pat[i].s + 1 + (is_rest(&pat[i]) ? 1 : 0);
		if (is_rest(&pat[i])) {
			/* the rest of the path, undecoded, from this segment on */
			const char *from = ps[i].s;
			size_t len = strlen(from);
			if (len >= ROUTES_MAX_VALUE)
				return BAD_VALUE;
			memcpy(p->value[p->n], from, len + 1);
		} else if (decode(&ps[i], p->value[p->n], ROUTES_MAX_VALUE)) {
			return BAD_VALUE;
		}
		p->n++;
	}
	return MATCH;
}

const char *routes_param(const struct routes_params *p, const char *name)
{
	size_t len = strlen(name);
	for (int i = 0; i < p->n; i++)
		if (!strncmp(p->name[i], name, len) && p->name[i][len] == '}')
			return p->value[i];
	return NULL;
}

int routes_pattern_ok(const char *pattern)
{
	struct seg s[ROUTES_MAX_SEGMENTS];
	int n = split(pattern, s, ROUTES_MAX_SEGMENTS), caps = 0;
	if (n < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		if (memchr(s[i].s, '{', s[i].n) || memchr(s[i].s, '}', s[i].n)) {
			if (!is_capture(&s[i]))
				return 0;
			size_t from = is_rest(&s[i]) ? 2 : 1;
			if (is_rest(&s[i]) && i != n - 1)
				return 0;
			if (s[i].n - 1 <= from)
				return 0;
			for (size_t k = from; k < s[i].n - 1; k++)
				if (!((s[i].s[k] >= 'a' && s[i].s[k] <= 'z') || s[i].s[k] == '_'))
					return 0;
			if (++caps > ROUTES_MAX_PARAMS)
				return 0;
		} else if (memchr(s[i].s, '%', s[i].n)) {
			return 0;
		}
	}
	return 1;
}

/* The route for method and path (filling p), or NULL; then *bad tells a refused capture, and
 * allow[0 .. *nallow) the methods that would match the path (each once, at most 8). */
static const struct route *lookup(const struct routes_table *t, const char *method, const char *path,
				  struct routes_params *p, const char **allow, int *nallow, int *bad)
{
	struct seg ps[ROUTES_MAX_SEGMENTS];
	int np = split(path, ps, ROUTES_MAX_SEGMENTS);
	*nallow = 0;
	*bad = 0;
	for (size_t i = 0; np >= 0 && i < t->n; i++) {
		const struct route *r = &t->routes[i];
		enum match m = match(r->pattern, ps, np, p);
		if (m == NO_MATCH)
			continue;
		if (strcmp(r->method, method)) {
			/* another method would match: remember it once for the Allow header */
			int seen = 0;
			for (int k = 0; k < *nallow; k++)
				seen |= !strcmp(allow[k], r->method);
			if (!seen && *nallow < 8)
				allow[(*nallow)++] = r->method;
			continue;
		}
		if (m == BAD_VALUE) {
			*bad = 1;
			return NULL;
		}
		return r;
	}
	return NULL;
}

const struct route *routes_find(const struct routes_table *t, const char *method, const char *path,
				struct routes_params *p)
{
	struct routes_params scratch;
	const char *allow[8];
	int nallow, bad;
	if (!p)
		p = &scratch;
	memset(p, 0, sizeof(*p));
	return lookup(t, method, path, p, allow, &nallow, &bad);
}

const char *routes_content_type(const struct route *rt)
{
	return rt->content_type ? rt->content_type : "application/json";
}

uint64_t routes_body_max(const struct route *rt)
{
	return rt->body_max ? rt->body_max : ROUTES_BODY_DEFAULT;
}

void routes_dispatch(const struct routes_table *t, void *ctx, const struct httpd_req *req,
		     struct httpd_resp *resp)
{
	struct routes_params p = {0};
	const char *allow[8];
	int nallow, bad;
	const struct route *found = lookup(t, req->method, req->path, &p, allow, &nallow, &bad);
	if (bad) {
		httpd_error(resp, 400, "bad path segment in %s: a value must be 1 to %d bytes, "
			    "without '/' or control characters", req->path, ROUTES_MAX_VALUE - 1);
	} else if (!found && nallow) {
		char list[128] = "";
		for (int k = 0; k < nallow; k++) {
			size_t len = strlen(list);
			snprintf(list + len, sizeof(list) - len, "%s%s", k ? ", " : "", allow[k]);
		}
		if (buf_addf(&resp->headers, "Allow: %s\r\n", list))
			buf_reset(&resp->headers);
		httpd_error(resp, 405, "%s is not allowed on %s (allowed: %s)", req->method, req->path, list);
	} else if (!found) {
		httpd_error(resp, 404, "no such endpoint: %s %s", req->method, req->path);
	} else {
		int refused = 0;
		for (size_t i = 0; t->middleware && t->middleware[i] && !refused; i++)
			refused = t->middleware[i](ctx, found, req, &p, resp);
		if (!refused)
			found->fn(ctx, found, req, &p, resp);
	}
	if (t->after)
		t->after(ctx, found, req, resp);
}
