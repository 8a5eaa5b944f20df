#include "support/shell.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"
#include "server/runtimes.h"
#include "server/tokens.h"
#include "support/fake_router.h"
#include "support/fake_runtime.h"

void shell_open(struct shell *sh, const struct shell_opts *opts)
{
	memset(sh, 0, sizeof(*sh));
	struct err e = {""};
	snprintf(sh->dir, sizeof(sh->dir), "/tmp/sluice-test-shell-XXXXXX");
	cr_assert(mkdtemp(sh->dir));
	snprintf(sh->artifacts, sizeof(sh->artifacts), "%s/artifacts", sh->dir);
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "mkdir -p %s", sh->artifacts);
	cr_assert_eq(system(path), 0);
	snprintf(path, sizeof(path), "%s/sluice.db", sh->dir);
	store *inner = NULL;
	cr_assert_eq(store_open(&inner, path, &e), 0, "%s", e.msg);
	cr_assert_eq(faulty_store_open(&sh->store, &sh->fault, inner, &e), 0, "%s", e.msg);
	snprintf(path, sizeof(path), "%s/admin.token", sh->dir);
	cr_assert_eq(tokens_bootstrap(sh->store, path, &e), 1, "%s", e.msg);
	FILE *f = fopen(path, "r");
	cr_assert(f && fgets(sh->admin, sizeof(sh->admin), f), "the admin token file");
	fclose(f);
	cr_assert_eq(strlen(sh->admin), AUTH_SECRET_LEN);
	cr_assert_eq(runtime_open_ops(&sh->rt, &fake_runtime_ops, NULL, &(struct runtime_host){sh->dir}, &e), 0,
		     "%s", e.msg);
	cr_assert_eq(runtimes_open_with(&sh->rts, sh->dir, sh->rt, &e), 0, "%s", e.msg);
	sh->router = fake_router_new();
	sh->loop = loop_new();
	cr_assert(sh->router && sh->loop);
	sh->vr = verify_new(sh->loop, sh->router, NULL);
	cr_assert(sh->vr);
	sh->rec = reconcile_new(sh->loop, sh->store, sh->rts, sh->router, sh->artifacts);
	cr_assert(sh->rec);
	sh->ex = executor_new(&(struct executor_deps){sh->loop, sh->store, sh->rts, sh->router, sh->vr,
						      sh->rec, NULL, sh->dir, NULL, NULL});
	cr_assert(sh->ex);
	sh->cat = catalog_new(sh->store, sh->rts);
	sh->flags = flags_new(sh->store);
	cr_assert(sh->cat && sh->flags);
	sh->rollouts = rollouts_new(&(struct rollouts_deps){sh->store, sh->flags, sh->router, sh->cat, NULL});
	cr_assert(sh->rollouts);
	sh->api = api_new(&(struct api_deps){sh->loop, sh->store, sh->rts, sh->ex, sh->rec, sh->vr,
					      sh->artifacts, opts ? opts->hosts : NULL, NULL, sh->flags,
					      sh->rollouts, opts ? opts->ofrep_rate : 0});
	cr_assert(sh->api);
}

void shell_close(struct shell *sh)
{
	api_free(sh->api);
	rollouts_free(sh->rollouts);
	flags_free(sh->flags);
	catalog_free(sh->cat);
	executor_free(sh->ex);
	reconcile_free(sh->rec);
	verify_free(sh->vr);
	router_free(sh->router);
	runtimes_close(sh->rts);
	store_close(sh->store);
	loop_free(sh->loop);
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", sh->dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", sh->dir);
	memset(sh, 0, sizeof(*sh));
}

void shell_answer_free(struct shell_answer *a)
{
	json_decref(a->json);
	free(a->text);
	memset(a, 0, sizeof(*a));
}

/* What the HTTP server does with a request whose head and body it has read: the API's on_head
 * hook first (the body limit, an upload's sink), the body fed to the sink in small pieces as if
 * it arrived slowly, then the handler, then the sink's done. */
static void serve(struct shell *sh, struct httpd_req *req, struct httpd_resp *resp)
{
	struct httpd_body b = {.max_body = 4u << 20};
	if (api_on_head(sh->api, req, &b, resp)) {
		cr_assert_null(b.write, "a refused head leaves no sink");
		return;
	}
	cr_assert_leq(req->body_len, b.max_body, "%s %s: body over the route's limit", req->method, req->path);
	if (b.write) {
		struct err e = {""};
		for (size_t off = 0; off < req->body_len; off += 7) {
			size_t n = req->body_len - off < 7 ? req->body_len - off : 7;
			int st = b.write(b.arg, req->body + off, n, &e);
			if (st) {
				httpd_error(resp, st, "%s", e.msg);
				b.done(b.arg);
				return;
			}
		}
		req->body_sink = b.arg;
		req->body_streamed = req->body_len;
		req->body = "";
		req->body_len = 0;
	}
	api_handle(sh->api, req, resp);
	if (b.write && b.done)
		b.done(b.arg);
}

int shell_raw(struct shell *sh, const char *raw, size_t len, struct shell_answer *out)
{
	shell_answer_free(out);
	struct http_limits lim = {16384, 64, 0};
	static struct http_head head;
	ssize_t n = http_parse_request(raw, len, &lim, &head);
	cr_assert_gt(n, 0, "test request does not parse (%zd): %.200s", n, raw);
	char method[16], path[2048];
	snprintf(method, sizeof(method), "%.*s", (int)head.method_len, head.method);
	snprintf(path, sizeof(path), "%.*s", (int)head.target_len, head.target);
	char *q = strchr(path, '?');
	if (q)
		*q++ = '\0';
	struct httpd_req req = {.head = &head, .method = method, .path = path, .query = q ? q : "",
				.body = raw + n, .body_len = len - (size_t)n, .peer = "127.0.0.1:1"};
	struct httpd_resp resp = {.status = 200};
	buf_init(&resp.headers, 4096);
	buf_init(&resp.body, 8u << 20);
	serve(sh, &req, &resp);
	if (resp.stream.start) /* a stream: answered as the server answers one it cannot stream */
		resp.stream.end(resp.stream.arg);
	out->status = resp.status;
	out->content_type = resp.content_type;
	snprintf(out->headers, sizeof(out->headers), "%.*s", (int)resp.headers.len,
		 resp.headers.data ? resp.headers.data : "");
	out->text = strndup(resp.body.data ? resp.body.data : "", resp.body.len);
	if (!resp.content_type || strstr(resp.content_type, "json"))
		out->json = json_loads(out->text, 0, NULL);
	buf_release(&resp.headers);
	buf_release(&resp.body);
	return out->status;
}

int shell_call(struct shell *sh, const char *token, const char *method, const char *target,
	       const char *body, size_t len, struct shell_answer *out)
{
	char *raw = NULL;
	size_t rawlen = 0;
	FILE *f = open_memstream(&raw, &rawlen);
	cr_assert(f);
	if (!token)
		token = sh->admin;
	fprintf(f, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:7070\r\nContent-Type: %s\r\nContent-Length: %zu\r\n",
		method, target,
		strncmp(target, "/v1/artifacts/", 14) ? "application/json" : "application/octet-stream",
		body ? len : 0);
	if (*token)
		fprintf(f, "Authorization: Bearer %s\r\n", token);
	fputs("\r\n", f);
	if (body)
		fwrite(body, 1, len, f);
	cr_assert_eq(fclose(f), 0);
	int status = shell_raw(sh, raw, rawlen, out);
	free(raw);
	return status;
}

void shell_token(struct shell *sh, const char *name, const char *scopes_json, char secret[AUTH_SECRET_LEN + 1])
{
	char body[4096];
	snprintf(body, sizeof(body), "{\"name\": \"%s\", \"scopes\": %s}", name, scopes_json);
	struct shell_answer a = {0};
	cr_assert_eq(shell_call(sh, NULL, "POST", "/v1/tokens", body, strlen(body), &a), 201, "%s", a.text);
	snprintf(secret, AUTH_SECRET_LEN + 1, "%s", json_string_value(json_object_get(a.json, "token")));
	shell_answer_free(&a);
}
