/*
 * conformance: the tests every store driver must pass (store/store.h's contract).
 *
 * A driver's test file describes how to get a store (struct store_factory) and registers each
 * conformance_* function below as a Criterion test; test_store.c does it for SQLite. Each
 * function opens a fresh store, asserts, and closes it; none depends on another.
 */
#ifndef SLUICE_TEST_STORE_CONFORMANCE_H
#define SLUICE_TEST_STORE_CONFORMANCE_H

#include "store/store.h"

struct store_factory {
	/* A new, empty store (what an earlier call made is gone). Asserts on failure. */
	store *(*open_fresh)(void);
	/* The store the last open_fresh made, opened again (the caller closed its handle). */
	store *(*reopen)(void);
};

void conformance_manifests(const struct store_factory *f);
void conformance_releases(const struct store_factory *f);
void conformance_deployments(const struct store_factory *f);
void conformance_events(const struct store_factory *f);
void conformance_stable(const struct store_factory *f);
void conformance_transactions(const struct store_factory *f);
void conformance_not_found(const struct store_factory *f);
void conformance_reopen_keeps_everything(const struct store_factory *f);
void conformance_changes_grow(const struct store_factory *f);
void conformance_tokens(const struct store_factory *f);
void conformance_audit(const struct store_factory *f);
void conformance_audit_with_its_effect(const struct store_factory *f);
void conformance_flags(const struct store_factory *f);
void conformance_rollouts(const struct store_factory *f);
void conformance_leases(const struct store_factory *f);
void conformance_lease_expiry(const struct store_factory *f);
void conformance_lease_fencing(const struct store_factory *f);
void conformance_deployment_compare_and_set(const struct store_factory *f);
void conformance_artifacts(const struct store_factory *f);
void conformance_secrets(const struct store_factory *f);
void conformance_subscriptions(const struct store_factory *f);
void conformance_outbox(const struct store_factory *f);
void conformance_outbox_with_its_event(const struct store_factory *f);

/* Registers every conformance test for one driver: CONFORMANCE_TESTS(sqlite, &factory, .fini = f) */
#define CONFORMANCE_TEST_(suite, name, factory, ...) \
	Test(suite, name, __VA_ARGS__) { conformance_##name(factory); }
#define CONFORMANCE_TESTS(suite, factory, ...)                                 \
	CONFORMANCE_TEST_(suite, manifests, factory, __VA_ARGS__)              \
	CONFORMANCE_TEST_(suite, releases, factory, __VA_ARGS__)               \
	CONFORMANCE_TEST_(suite, deployments, factory, __VA_ARGS__)            \
	CONFORMANCE_TEST_(suite, events, factory, __VA_ARGS__)                 \
	CONFORMANCE_TEST_(suite, stable, factory, __VA_ARGS__)                 \
	CONFORMANCE_TEST_(suite, transactions, factory, __VA_ARGS__)           \
	CONFORMANCE_TEST_(suite, not_found, factory, __VA_ARGS__)              \
	CONFORMANCE_TEST_(suite, reopen_keeps_everything, factory, __VA_ARGS__) \
	CONFORMANCE_TEST_(suite, changes_grow, factory, __VA_ARGS__)           \
	CONFORMANCE_TEST_(suite, tokens, factory, __VA_ARGS__)                 \
	CONFORMANCE_TEST_(suite, audit, factory, __VA_ARGS__)                  \
	CONFORMANCE_TEST_(suite, audit_with_its_effect, factory, __VA_ARGS__)  \
	CONFORMANCE_TEST_(suite, flags, factory, __VA_ARGS__)                  \
	CONFORMANCE_TEST_(suite, rollouts, factory, __VA_ARGS__)               \
	CONFORMANCE_TEST_(suite, leases, factory, __VA_ARGS__)                 \
	CONFORMANCE_TEST_(suite, lease_expiry, factory, __VA_ARGS__)           \
	CONFORMANCE_TEST_(suite, lease_fencing, factory, __VA_ARGS__)          \
	CONFORMANCE_TEST_(suite, deployment_compare_and_set, factory, __VA_ARGS__) \
	CONFORMANCE_TEST_(suite, artifacts, factory, __VA_ARGS__)              \
	CONFORMANCE_TEST_(suite, secrets, factory, __VA_ARGS__) \
	CONFORMANCE_TEST_(suite, subscriptions, factory, __VA_ARGS__)          \
	CONFORMANCE_TEST_(suite, outbox, factory, __VA_ARGS__)                 \
	CONFORMANCE_TEST_(suite, outbox_with_its_event, factory, __VA_ARGS__)

#endif
