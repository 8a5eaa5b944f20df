/* Unit tests of src/loop/loop.c: timer ids and cancellation (a timer armed earlier than one
 * already pending moves up the heap; its id must still be its own). */
#include <criterion/criterion.h>

#include "loop/loop.h"

static int fired[8];

static void on_fire(loop *l, void *arg)
{
	fired[(long)arg]++;
}

static void on_stop(loop *l, void *arg)
{
	fired[(long)arg]++;
	loop_stop(l);
}

Test(loop, cancel_by_the_returned_id, .timeout = 10)
{
	loop *l = loop_new();
	cr_assert(l);
	memset(fired, 0, sizeof(fired));
	uint64_t late = loop_timer(l, 60, on_stop, (void *)0);
	uint64_t early = loop_timer(l, 10, on_fire, (void *)1); /* moves above `late` */
	uint64_t earliest = loop_timer(l, 0, on_fire, (void *)2);
	cr_assert(late && early && earliest);
	cr_assert(late != early && early != earliest && late != earliest);
	loop_timer_cancel(l, early);
	cr_assert_eq(loop_run(l), 0);
	cr_assert_eq(fired[0], 1, "the late timer was cancelled instead of the early one");
	cr_assert_eq(fired[1], 0, "the cancelled timer fired");
	cr_assert_eq(fired[2], 1);
	loop_free(l);
}

Test(loop, timers_fire_in_order_and_cancel_any, .timeout = 10)
{
	loop *l = loop_new();
	cr_assert(l);
	memset(fired, 0, sizeof(fired));
	/* armed latest first, so each one moves to the top of the heap */
	uint64_t ids[6];
	for (int i = 5; i >= 0; i--)
		ids[i] = loop_timer(l, (uint64_t)(i * 5), i == 5 ? on_stop : on_fire, (void *)(long)i);
	loop_timer_cancel(l, ids[1]);
	loop_timer_cancel(l, ids[3]);
	loop_timer_cancel(l, 12345); /* unknown: ignored */
	cr_assert_eq(loop_run(l), 0);
	int want[6] = {1, 0, 1, 0, 1, 1};
	for (int i = 0; i < 6; i++)
		cr_assert_eq(fired[i], want[i], "timer %d fired %d times", i, fired[i]);
	loop_free(l);
}
