#include "util/httpc.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct httpc {
	CURL *curl;
	long timeout_ms;
	size_t max_response;
	struct curl_slist *extra; /* httpc_set_headers, in curl's form; NULL: none */
	char *cacert;             /* httpc_set_cacert; NULL: the system's CAs */
};

static int curl_ready;

httpc *httpc_new(long timeout_ms, size_t max_response)
{
	if (!curl_ready) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		curl_ready = 1;
	}
	httpc *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->curl = curl_easy_init();
	if (!c->curl) {
		free(c);
		return NULL;
	}
	c->timeout_ms = timeout_ms;
	c->max_response = max_response;
	return c;
}

void httpc_free(httpc *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->extra);
	free(c->cacert);
	free(c);
}

int httpc_set_cacert(httpc *c, const char *path)
{
	char *p = strdup(path);
	if (!p)
		return -1;
	free(c->cacert);
	c->cacert = p;
	return 0;
}

/* tchar of RFC 9110 5.6.2 */
static int is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

int httpc_headers_check(const char *const *headers, struct err *e)
{
	static const char *const owned[] = {"Host",       "Content-Length", "Transfer-Encoding",
					    "Connection", "Expect",         "Content-Type"};
	for (size_t n = 0; headers && headers[n]; n++) {
		const char *f = headers[n];
		if (n == HTTPC_MAX_HEADERS)
			return err_set(e, "more than %d request header fields", HTTPC_MAX_HEADERS);
		if (strnlen(f, HTTPC_MAX_HEADER_LEN + 1) > HTTPC_MAX_HEADER_LEN)
			return err_set(e, "request header field '%.32s...' is longer than %d bytes", f,
				       HTTPC_MAX_HEADER_LEN);
		const char *colon = strchr(f, ':');
		if (!colon || colon == f)
			return err_set(e, "request header field '%.64s': expected 'Name: value'", f);
		int nl = (int)(colon - f);
		for (const char *p = f; p < colon; p++)
			if (!is_tchar((unsigned char)*p))
				return err_set(e, "request header field '%.*s': not a valid field name",
					       nl < 64 ? nl : 64, f);
		for (const char *p = colon + 1; *p; p++)
			if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
				return err_set(e, "request header field %.*s: the value holds a control "
						  "character (CR, LF, ...)",
					       nl < 64 ? nl : 64, f);
		for (size_t k = 0; k < sizeof(owned) / sizeof(owned[0]); k++)
			if (strlen(owned[k]) == (size_t)nl && !strncasecmp(f, owned[k], (size_t)nl))
				return err_set(e, "request header field %s is the client's own, it cannot be "
						  "added",
					       owned[k]);
	}
	return 0;
}

int httpc_headers_append(struct curl_slist **list, const char *const *headers)
{
	for (size_t n = 0; headers && headers[n]; n++) {
		const char *f = headers[n], *colon = strchr(f, ':'), *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t vl = strlen(v);
		while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			vl--;
		char line[HTTPC_MAX_HEADER_LEN + 4];
		if (vl)
			snprintf(line, sizeof(line), "%.*s: %.*s", (int)(colon - f), f, (int)vl, v);
		else
			snprintf(line, sizeof(line), "%.*s;", (int)(colon - f), f);
		struct curl_slist *l = curl_slist_append(*list, line);
		if (!l)
			return -1;
		*list = l;
	}
	return 0;
}

int httpc_set_headers(httpc *c, const char *const *headers, struct err *e)
{
	if (httpc_headers_check(headers, e))
		return -1;
	struct curl_slist *l = NULL;
	if (httpc_headers_append(&l, headers)) {
		curl_slist_free_all(l);
		return err_set(e, "out of memory for the request header fields");
	}
	curl_slist_free_all(c->extra);
	c->extra = l;
	return 0;
}

/* hdrs followed by the fields of httpc_set_headers; NULL (hdrs freed) when out of memory. */
static struct curl_slist *with_extra(httpc *c, struct curl_slist *hdrs)
{
	for (struct curl_slist *x = c->extra; x && hdrs; x = x->next) {
		struct curl_slist *l = curl_slist_append(hdrs, x->data);
		if (!l) {
			curl_slist_free_all(hdrs);
			return NULL;
		}
		hdrs = l;
	}
	return hdrs;
}

struct sink {
	struct buf *b;
	int too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	if (buf_add(s->b, p, size * n)) {
		s->too_big = 1;
		return 0;
	}
	return size * n;
}

static int perform(httpc *c, const char *method, const char *url, struct curl_slist *hdrs,
		   long *status, struct buf *resp, struct err *e)
{
	CURL *h = c->curl;
	size_t limit = resp->limit;
	resp->limit = resp->len + c->max_response < resp->len ? BUF_NOLIMIT : resp->len + c->max_response;
	struct sink sink = {resp, 0};
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms < 2000 ? c->timeout_ms : 2000);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never send loopback calls through $http_proxy */
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->cacert)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
	CURLcode rc = curl_easy_perform(h);
	resp->limit = limit;
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	if (sink.too_big)
		return err_set(e, "%s %s: response larger than %zu bytes", method, url, c->max_response);
	if (rc != CURLE_OK) {
		err_set(e, "%s %s: %s", method, url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
		return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE
		       ? HTTPC_E_VERIFY : -1;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	return 0;
}

int httpc_request(httpc *c, const char *method, const char *url, const char *body, size_t body_len,
		  const char *ctype, long *status, struct buf *resp, struct err *e)
{
	struct curl_slist *hdrs = NULL;
	char ct[128];
	snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "application/json");
	hdrs = curl_slist_append(hdrs, ct);
	hdrs = curl_slist_append(hdrs, "Expect:");
	hdrs = with_extra(c, hdrs);
	if (!hdrs)
		return err_set(e, "%s %s: out of memory", method, url);
	curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 0L);
	if (body) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	} else {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	}
	/* A HEAD answer has no body whatever its Content-Length says: without NOBODY curl would
	 * wait for one until the timeout. */
	curl_easy_setopt(c->curl, CURLOPT_NOBODY, strcmp(method, "HEAD") ? 0L : 1L);
	int rc = perform(c, method, url, hdrs, status, resp, e);
	curl_slist_free_all(hdrs);
	return rc;
}

int httpc_json(httpc *c, const char *method, const char *url, const json_t *body, long *status,
	       json_t **out, struct err *e)
{
	char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct buf resp;
	buf_init(&resp, BUF_NOLIMIT);
	int rc = httpc_request(c, method, url, txt, txt ? strlen(txt) : 0, NULL, status, &resp, e);
	free(txt);
	if (rc == 0 && out)
		*out = resp.len ? json_loadb(resp.data, resp.len, 0, NULL) : NULL;
	buf_release(&resp);
	return rc;
}

struct stream_sink {
	CURL *h;
	int (*fn)(void *arg, const char *data, size_t len);
	void *arg;
	struct buf *err_body;
	int stopped, too_big;
};

static size_t on_stream(char *p, size_t size, size_t n, void *arg)
{
	struct stream_sink *s = arg;
	long st = 0;
	curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &st);
	if (st < 200 || st > 299) {
		if (buf_add(s->err_body, p, size * n)) {
			s->too_big = 1;
			return 0;
		}
		return size * n;
	}
	if (s->fn(s->arg, p, size * n)) {
		s->stopped = 1;
		return 0;
	}
	return size * n;
}

int httpc_stream(httpc *c, const char *url, const char *const *headers, long idle_ms,
		 int (*fn)(void *arg, const char *data, size_t len), void *arg, long *status,
		 struct buf *err_body, struct err *e)
{
	if (httpc_headers_check(headers, e))
		return -1;
	struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: text/event-stream");
	if (hdrs && httpc_headers_append(&hdrs, headers)) {
		curl_slist_free_all(hdrs);
		hdrs = NULL;
	}
	hdrs = hdrs ? with_extra(c, hdrs) : NULL;
	if (!hdrs)
		return err_set(e, "GET %s: out of memory", url);
	CURL *h = c->curl;
	size_t limit = err_body->limit;
	err_body->limit = err_body->len + c->max_response;
	struct stream_sink sink = {h, fn, arg, err_body, 0, 0};
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(h, CURLOPT_UPLOAD, 0L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "GET");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L); /* fewer than 1 byte/s ... */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, idle_ms < 1000 ? 1L : idle_ms / 1000); /* ... this long */
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms < 2000 ? c->timeout_ms : 2000);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->cacert)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
	CURLcode rc = curl_easy_perform(h);
	err_body->limit = limit;
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 0L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 0L);
	curl_slist_free_all(hdrs);
	if (sink.too_big)
		return err_set(e, "GET %s: response larger than %zu bytes", url, c->max_response);
	if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && sink.stopped)) {
		err_set(e, "GET %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
		return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE
		       ? HTTPC_E_VERIFY : -1;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	return 0;
}

int httpc_upload(httpc *c, const char *method, const char *url, const char *path, long *status,
		 struct buf *resp, struct err *e)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return err_set(e, "could not open '%s': %s", path, strerror(errno));
	struct stat st;
	fstat(fileno(f), &st);
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/octet-stream");
	hdrs = curl_slist_append(hdrs, "Expect:");
	hdrs = with_extra(c, hdrs);
	if (!hdrs) {
		fclose(f);
		return err_set(e, "%s %s: out of memory", method, url);
	}
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c->curl, CURLOPT_READDATA, f);
	curl_easy_setopt(c->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
	int rc = perform(c, method, url, hdrs, status, resp, e);
	curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 0L);
	curl_slist_free_all(hdrs);
	fclose(f);
	return rc;
}

char *httpc_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1), *p = out;
	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			*p++ = (char)ch;
		} else {
			*p++ = '%';
			*p++ = hex[ch >> 4];
			*p++ = hex[ch & 15];
		}
	}
	*p = '\0';
	return out;
}
