#include "util/name.h"

#include <string.h>

static int lower_or_digit(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int letter_or_digit(char c)
{
	return lower_or_digit(c) || (c >= 'A' && c <= 'Z');
}

int name_object_ok(const char *s)
{
	if (!s)
		return 0;
	size_t n = strlen(s);
	if (n < 1 || n > NAME_OBJECT_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!lower_or_digit(s[i]) && !(s[i] == '-' && i > 0 && i + 1 < n))
			return 0;
	return 1;
}

int name_version_ok(const char *s)
{
	if (!s)
		return 0;
	size_t n = strlen(s);
	if (n < 1 || n > NAME_VERSION_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!letter_or_digit(s[i]) && !strchr("._+-", s[i]))
			return 0;
	return 1;
}

int name_env_var_ok(const char *s)
{
	if (!s)
		return 0;
	size_t n = strlen(s);
	if (n < 1 || n > NAME_ENV_VAR_MAX || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!letter_or_digit(s[i]) && s[i] != '_')
			return 0;
	return 1;
}

int name_metric_ok(const char *s)
{
	if (!s)
		return 0;
	size_t n = strlen(s);
	if (n < 1 || n > NAME_METRIC_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!letter_or_digit(s[i]) && !strchr("_.-", s[i]))
			return 0;
	return 1;
}

int name_label_ok(const char *s)
{
	if (!s)
		return 0;
	const char *t = strchr(s, '~');
	if (!t)
		return name_version_ok(s);
	size_t n = (size_t)(t - s);
	char v[NAME_VERSION_MAX + 1];
	if (n < 1 || n > NAME_VERSION_MAX)
		return 0;
	memcpy(v, s, n);
	v[n] = '\0';
	return name_version_ok(v) && name_object_ok(t + 1);
}

int name_ok(enum name_kind kind, const char *s)
{
	switch (kind) {
	case NAME_OBJECT:
		return name_object_ok(s);
	case NAME_VERSION:
		return name_version_ok(s);
	case NAME_ENV_VAR:
		return name_env_var_ok(s);
	case NAME_METRIC:
		return name_metric_ok(s);
	}
	return 0;
}

int name_host_ok(const char *s)
{
	if (!s)
		return 0;
	if (s[0] == '*' && s[1] == '.')
		s += 2;
	size_t n = strlen(s), label = 0;
	if (n == 0 || n > NAME_HOST_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			   c == '-') {
			if ((c == '-' && label == 0) || ++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0 && s[n - 1] != '-';
}

int name_path_prefix_ok(const char *s)
{
	if (!s)
		return 0;
	size_t n = strlen(s);
	if (n == 0 || n > NAME_PATH_PREFIX_MAX || s[0] != '/')
		return 0;
	if (n == 1)
		return 1;
	if (s[n - 1] == '/')
		return 0;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];
		if (c == '/' && s[i - 1] == '/')
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (c && strchr("/-._~!$&'()*+,;=:@%", c))))
			return 0;
	}
	return 1;
}

int name_ok_n(enum name_kind kind, const char *s, size_t len)
{
	return s && strlen(s) == len && name_ok(kind, s);
}

const char *name_rule(enum name_kind kind)
{
	switch (kind) {
	case NAME_OBJECT:
		return "a name of lowercase letters, digits and '-' (1..63 characters, starting and "
		       "ending with a letter or digit)";
	case NAME_VERSION:
		return "a version of letters, digits and . _ - + (1..63 characters)";
	case NAME_ENV_VAR:
		return "an environment variable name (letters, digits and '_', not starting with a "
		       "digit)";
	case NAME_METRIC:
		return "a metric name of letters, digits, '_', '-' and '.' (1..63 characters)";
	}
	return "a name";
}
