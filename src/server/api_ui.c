/*
 * api_ui: the dashboard's static files at /ui (server/ui_files.h: embedded at build time, no
 * file is read at run time). They are public and hold no data: the page asks for a token and
 * calls the API with it as a bearer header (never a cookie, so the API's CSRF stance holds:
 * docs/security.md). Every answer carries a strict Content-Security-Policy (scripts, styles
 * and fetches from this origin only, no inline script, no framing), nosniff and no referrer;
 * files carry an ETag (their hash) and are revalidated (304) rather than cached blindly, so a
 * new binary's files are seen at once.
 */
#include <string.h>

#include "server/api_internal.h"
#include "server/ui_files.h"

static const char ui_headers[] =
	"Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
	"frame-ancestors 'none'\r\n"
	"X-Content-Type-Options: nosniff\r\n"
	"X-Frame-Options: DENY\r\n"
	"Referrer-Policy: no-referrer\r\n"
	"Cache-Control: no-cache\r\n";

static const struct ui_file *ui_find(const char *name)
{
	for (const struct ui_file *f = ui_files; f->name; f++)
		if (!strcmp(f->name, name))
			return f;
	return NULL;
}

static void ui_serve(struct route_ctx *c, const char *name)
{
	const struct ui_file *f = ui_find(name);
	if (buf_adds(&c->resp->headers, ui_headers)) {
		httpd_error(c->resp, 500, "out of memory");
		return;
	}
	if (!f) {
		httpd_error(c->resp, 404, "no such file in the dashboard: %s", name);
		return;
	}
	char inm[128];
	const char *have = httpd_header(c->req, "If-None-Match", inm, sizeof(inm));
	if (buf_addf(&c->resp->headers, "ETag: %s\r\n", f->etag)) {
		httpd_error(c->resp, 500, "out of memory");
		return;
	}
	if (have && strstr(have, f->etag)) {
		c->resp->status = 304;
		return;
	}
	c->resp->status = 200;
	c->resp->content_type = f->content_type;
	if (buf_add(&c->resp->body, f->data, f->len))
		httpd_error(c->resp, 500, "out of memory");
}

void api_h_ui_index(struct route_ctx *c)
{
	ui_serve(c, "index.html");
}

void api_h_ui_file(struct route_ctx *c)
{
	const char *rest = routes_param(c->p, "rest");
	/* the table's names are the only answers: nothing from the request names a file */
	ui_serve(c, rest && *rest ? rest : "index.html");
}
