/*
 * The CLI's client (src/cli/client.c): which servers get a local admin token by themselves.
 */
#include <criterion/criterion.h>

#include "cli/client.h"

Test(client, only_loopback_servers_are_local)
{
	static const struct {
		const char *url;
		int local;
	} rows[] = {
		{"http://127.0.0.1:7070", 1},
		{"https://127.0.0.1:7070/", 1},
		{"http://127.1.2.3", 1},
		{"http://localhost:7070", 1},
		{"http://LOCALHOST", 1},
		{"http://[::1]:7070", 1},
		{"http://[::1]", 1},
		{"https://127.attacker.example/", 0},
		{"https://127.0.0.1.attacker.example:7070", 0},
		{"http://localhost.attacker.example:7070", 0},
		{"http://127.0.0.1@attacker.example:7070", 0},
		{"http://attacker.example/127.0.0.1", 0},
		{"http://10.0.0.1:7070", 0},
		{"http://[::2]:7070", 0},
		{"http://0.0.0.0:7070", 0},
		{"http://", 0},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		cr_expect_eq(client_server_is_local(rows[i].url), rows[i].local, "%s", rows[i].url);
}
