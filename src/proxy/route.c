#include "proxy/route.h"

#include <ctype.h>

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/name.h"

int route_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= ROUTE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

/* An HTTP token (RFC 9110 tchar), used for header and cookie names. */
static int is_token(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", *s)))
			return 0;
	return 1;
}

int route_addr_parse(const char *s, struct route_addr *out, struct err *e)
{
	char host[ROUTE_ADDR_MAX];
	const char *port;
	size_t n = strlen(s);
	if (n == 0 || n >= ROUTE_ADDR_MAX)
		return err_set(e, "must be \"host:port\"");
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return err_set(e, "must be \"[ipv6]:port\"");
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = 0;
		port = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon || colon == s)
			return err_set(e, "must be \"host:port\"");
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = 0;
		port = colon + 1;
	}
	char *end;
	long p = strtol(port, &end, 10);
	if (!*port || *end || p < 0 || p > 65535)
		return err_set(e, "port must be 0..65535");
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc)
		return err_set(e, "cannot resolve '%s': %s", host, gai_strerror(rc));
	memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
	out->salen = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(out->text, sizeof(out->text), "%s", s);
	return 0;
}

static int copy_str(const json_t *obj, const char *key, char *dst, size_t cap, int required,
		    const char *path, struct err *e)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		if (required)
			return err_set(e, "%s%s%s: is required", path, *path ? "." : "", key);
		dst[0] = 0;
		return 0;
	}
	if (!json_is_string(v))
		return err_set(e, "%s%s%s: must be a string", path, *path ? "." : "", key);
	if (json_string_length(v) == 0 || json_string_length(v) >= cap)
		return err_set(e, "%s%s%s: must be 1 to %zu bytes", path, *path ? "." : "", key, cap - 1);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return err_set(e, "%s%s%s: must not contain NUL", path, *path ? "." : "", key);
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int check_keys(const json_t *obj, const char *const *allowed, const char *path, struct err *e)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v) {
		int ok = 0;
		for (size_t i = 0; allowed[i]; i++)
			if (!strcmp(k, allowed[i]))
				ok = 1;
		if (!ok)
			return err_set(e, "%s%s%s: unknown field", path, *path ? "." : "", k);
	}
	return 0;
}

static int parse_version(const json_t *j, const char *path, struct route_version_cfg *v, struct err *e)
{
	static const char *const keys[] = {"version", "weight", "backends", NULL};
	if (!json_is_object(j))
		return err_set(e, "%s: must be an object", path);
	if (check_keys(j, keys, path, e) || copy_str(j, "version", v->name, sizeof(v->name), 1, path, e))
		return -1;
	for (const char *c = v->name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		      *c == '.' || *c == '_' || *c == '-' || *c == '+' || *c == '~'))
			return err_set(e, "%s.version: must match [A-Za-z0-9._+~-]+", path);
	json_t *w = json_object_get(j, "weight");
	if (!w)
		return err_set(e, "%s.weight: is required", path);
	if (!json_is_integer(w) || json_integer_value(w) < 0 || json_integer_value(w) > 1000000000)
		return err_set(e, "%s.weight: must be an integer from 0 to 1000000000", path);
	v->weight = (uint64_t)json_integer_value(w);
	json_t *b = json_object_get(j, "backends");
	if (!b)
		return err_set(e, "%s.backends: is required", path);
	if (!json_is_array(b) || json_array_size(b) == 0 || json_array_size(b) > ROUTE_MAX_BACKENDS)
		return err_set(e, "%s.backends: must be an array of 1 to %d \"host:port\" strings", path,
			       ROUTE_MAX_BACKENDS);
	v->backends = calloc(json_array_size(b), sizeof(*v->backends));
	if (!v->backends)
		return err_set(e, "out of memory");
	for (size_t i = 0; i < json_array_size(b); i++) {
		json_t *a = json_array_get(b, i);
		struct err ae;
		if (!json_is_string(a))
			return err_set(e, "%s.backends[%zu]: must be a \"host:port\" string", path, i);
		if (route_addr_parse(json_string_value(a), &v->backends[i], &ae))
			return err_set(e, "%s.backends[%zu]: %s", path, i, ae.msg);
		for (size_t k = 0; k < i; k++)
			if (!strcmp(v->backends[k].text, v->backends[i].text))
				return err_set(e, "%s.backends[%zu]: duplicate backend %s", path, i,
					       v->backends[i].text);
		v->nbackends = i + 1;
	}
	return 0;
}

/* "hosts" and "path_prefix": the route's place on a shared listener. */
static int parse_hosts(const json_t *j, const char *path, struct route_cfg *out, struct err *e)
{
	const char *dot = *path ? "." : "";
	json_t *hs = json_object_get(j, "hosts"), *pp = json_object_get(j, "path_prefix");
	if (hs && !json_is_null(hs)) {
		if (!json_is_array(hs) || json_array_size(hs) == 0 || json_array_size(hs) > ROUTE_MAX_HOSTS)
			return err_set(e, "%s%shosts: must be an array of 1 to %d host names", path, dot,
				       ROUTE_MAX_HOSTS);
		out->hosts = calloc(json_array_size(hs), sizeof(*out->hosts));
		if (!out->hosts)
			return err_set(e, "out of memory");
		for (size_t i = 0; i < json_array_size(hs); i++) {
			json_t *h = json_array_get(hs, i);
			if (!json_is_string(h) || strlen(json_string_value(h)) != json_string_length(h) ||
			    !name_host_ok(json_string_value(h)))
				return err_set(e, "%s%shosts[%zu]: must be a DNS name or \"*.\" and a DNS name "
					       "(no port)", path, dot, i);
			char *s = strdup(json_string_value(h));
			if (!s)
				return err_set(e, "out of memory");
			for (char *c = s; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			out->hosts[i] = s;
			out->nhosts = i + 1;
			for (size_t k = 0; k < i; k++)
				if (!strcmp(out->hosts[k], s))
					return err_set(e, "%s%shosts[%zu]: duplicate host %s", path, dot, i, s);
		}
	}
	if (pp && !json_is_null(pp)) {
		if (!out->nhosts)
			return err_set(e, "%s%spath_prefix: needs hosts (a route without hosts has its "
				       "listener to itself)", path, dot);
		if (!json_is_string(pp) || strlen(json_string_value(pp)) != json_string_length(pp) ||
		    !name_path_prefix_ok(json_string_value(pp)))
			return err_set(e, "%s%spath_prefix: must be \"/\" or \"/segment[/segment...]\" "
				       "without a trailing slash, query or fragment, at most 255 bytes", path, dot);
		if (strcmp(json_string_value(pp), "/") && !(out->path_prefix = strdup(json_string_value(pp))))
			return err_set(e, "out of memory");
	}
	return 0;
}

int route_cfg_parse(const json_t *j, const char *path, struct route_cfg *out, struct err *e)
{
	static const char *const keys[] = {"name", "listen", "hosts", "path_prefix", "sticky",
					   "pin_header", "versions", "backends_state", NULL};
	char p[256], d[ROUTE_ADDR_MAX];
	const char *dot = *path ? "." : "";
	memset(out, 0, sizeof(*out));
	if (!json_is_object(j))
		return err_set(e, "%s%smust be an object", path, *path ? ": " : "");
	if (check_keys(j, keys, path, e) || copy_str(j, "name", out->name, sizeof(out->name), 0, path, e))
		return -1;
	if (out->name[0] && !route_name_valid(out->name))
		return err_set(e, "%s%sname: must match [A-Za-z0-9._-]+", path, dot);
	if (copy_str(j, "listen", d, sizeof(d), 1, path, e))
		return -1;
	struct err ae;
	if (route_addr_parse(d, &out->listen, &ae))
		return err_set(e, "%s%slisten: %s", path, dot, ae.msg);
	if (parse_hosts(j, path, out, e))
		return -1;

	json_t *s = json_object_get(j, "sticky");
	if (s && !json_is_null(s)) {
		static const char *const skeys[] = {"cookie", "header", NULL};
		snprintf(p, sizeof(p), "%s%ssticky", path, dot);
		if (!json_is_object(s) || json_object_size(s) != 1)
			return err_set(e, "%s: must be {\"cookie\": NAME} or {\"header\": NAME}", p);
		if (check_keys(s, skeys, p, e))
			return -1;
		const char *k = json_object_get(s, "cookie") ? "cookie" : "header";
		out->sticky = !strcmp(k, "cookie") ? ROUTE_STICKY_COOKIE : ROUTE_STICKY_HEADER;
		if (copy_str(s, k, out->sticky_name, sizeof(out->sticky_name), 1, p, e))
			return -1;
		if (!is_token(out->sticky_name))
			return err_set(e, "%s.%s: must be a header/cookie name token", p, k);
	}
	json_t *ph = json_object_get(j, "pin_header");
	if (ph && !json_is_null(ph)) {
		if (copy_str(j, "pin_header", out->pin_header, sizeof(out->pin_header), 1, path, e))
			return -1;
		if (!is_token(out->pin_header))
			return err_set(e, "%s%spin_header: must be a header name token", path, dot);
	}

	json_t *vs = json_object_get(j, "versions");
	if (!vs)
		return err_set(e, "%s%sversions: is required", path, dot);
	if (!json_is_array(vs) || json_array_size(vs) == 0 || json_array_size(vs) > ROUTE_MAX_VERSIONS)
		return err_set(e, "%s%sversions: must be an array of 1 to %d versions", path, dot,
			       ROUTE_MAX_VERSIONS);
	for (size_t i = 0; i < json_array_size(vs); i++) {
		snprintf(p, sizeof(p), "%s%sversions[%zu]", path, dot, i);
		out->nversions = i + 1;
		if (parse_version(json_array_get(vs, i), p, &out->versions[i], e))
			return -1;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(out->versions[k].name, out->versions[i].name))
				return err_set(e, "%s.version: duplicate version '%s'", p, out->versions[i].name);
		out->total_weight += out->versions[i].weight;
	}
	if (out->total_weight == 0)
		return err_set(e, "%s%sversions: at least one weight must be positive", path, dot);
	return 0;
}

void route_cfg_release(struct route_cfg *c)
{
	for (size_t i = 0; i < ROUTE_MAX_VERSIONS; i++) {
		free(c->versions[i].backends);
		c->versions[i].backends = NULL;
		c->versions[i].nbackends = 0;
	}
	c->nversions = 0;
	for (size_t i = 0; i < c->nhosts; i++)
		free(c->hosts[i]);
	free(c->hosts);
	c->hosts = NULL;
	c->nhosts = 0;
	free(c->path_prefix);
	c->path_prefix = NULL;
}

json_t *route_cfg_json(const struct route_cfg *c)
{
	json_t *r = json_object();
	json_object_set_new(r, "name", json_string(c->name));
	json_object_set_new(r, "listen", json_string(c->listen.text));
	if (c->nhosts) {
		json_t *hs = json_array();
		for (size_t i = 0; i < c->nhosts; i++)
			json_array_append_new(hs, json_string(c->hosts[i]));
		json_object_set_new(r, "hosts", hs);
	}
	if (c->path_prefix)
		json_object_set_new(r, "path_prefix", json_string(c->path_prefix));
	if (c->sticky != ROUTE_STICKY_NONE)
		json_object_set_new(r, "sticky", json_pack("{ss}", c->sticky == ROUTE_STICKY_COOKIE ?
							       "cookie" : "header", c->sticky_name));
	if (c->pin_header[0])
		json_object_set_new(r, "pin_header", json_string(c->pin_header));
	json_t *vs = json_array();
	for (size_t i = 0; i < c->nversions; i++) {
		const struct route_version_cfg *v = &c->versions[i];
		json_t *bs = json_array();
		for (size_t k = 0; k < v->nbackends; k++)
			json_array_append_new(bs, json_string(v->backends[k].text));
		json_array_append_new(vs, json_pack("{sssIso}", "version", v->name, "weight",
						    (json_int_t)v->weight, "backends", bs));
	}
	json_object_set_new(r, "versions", vs);
	return r;
}

size_t route_pick_weighted(const struct route_cfg *c, uint64_t x)
{
	uint64_t acc = 0;
	for (size_t i = 0; i < c->nversions; i++) {
		acc += c->versions[i].weight;
		if (x < acc)
			return i;
	}
	return c->nversions - 1;
}

uint64_t route_hash(const char *key, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 1099511628211ull;
	}
	/* FNV's low bits are weak for short keys: finish with a 64-bit mixer (splitmix64). */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

size_t route_pick_sticky(const struct route_cfg *c, const char *key, size_t len)
{
	uint64_t h = route_hash(key, len);
	uint64_t x = (uint64_t)(((unsigned __int128)h * c->total_weight) >> 64);
	return route_pick_weighted(c, x);
}

int route_find_version(const struct route_cfg *c, const char *name, size_t len)
{
	for (size_t i = 0; i < c->nversions; i++)
		if (strlen(c->versions[i].name) == len && !memcmp(c->versions[i].name, name, len))
			return (int)i;
	return -1;
}

int route_cookie_find(const char *hdr, size_t len, const char *name, const char **val, size_t *vlen)
{
	size_t nlen = strlen(name), i = 0;
	while (i < len) {
		while (i < len && (hdr[i] == ' ' || hdr[i] == '\t' || hdr[i] == ';'))
			i++;
		size_t start = i;
		while (i < len && hdr[i] != ';')
			i++;
		/* pair = hdr[start..i) */
		const char *eq = memchr(hdr + start, '=', i - start);
		if (eq && (size_t)(eq - (hdr + start)) == nlen && !memcmp(hdr + start, name, nlen)) {
			const char *v = eq + 1;
			size_t n = (size_t)(hdr + i - v);
			while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
				n--;
			if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
				v++;
				n -= 2;
			}
			*val = v;
			*vlen = n;
			return 1;
		}
	}
	return 0;
}
