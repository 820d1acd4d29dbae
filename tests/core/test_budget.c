/* The shared byte budget: limits, waiting, EBUSY after the wait, and a
 * waiter woken by a give from another thread. */
#include <pthread.h>
#include <unistd.h>
#include "core/budget.h"
#include "test.h"

TEST(budget_limits_and_busy) {
  mskx_err e = {0};
  mem_budget *b;
  CHECK_EQ_INT(mem_budget_create(0, 10, &b, &e), MSKX_EINVAL);
  CHECK_OK(mem_budget_create(1000, 50, &b, &e), &e);
  CHECK_EQ_INT(mem_budget_take(b, 1001, "big", &e), MSKX_ELIMIT);
  CHECK(strstr(e.msg, "big") && strstr(e.msg, "budget"));
  CHECK_OK(mem_budget_take(b, 600, "a", &e), &e);
  CHECK_OK(mem_budget_take(b, 0, "none", &e), &e);
  CHECK_EQ_INT(mem_budget_take(b, 500, "b", &e), MSKX_EBUSY);
  CHECK(strstr(e.msg, "retry later") != NULL);
  CHECK(mem_budget_used(b) == 600);
  CHECK_OK(mem_budget_take(b, 400, "c", &e), &e);
  mem_budget_give(b, 1000);
  CHECK(mem_budget_used(b) == 0);
  mem_budget_destroy(b);
}

static void *give_later(void *arg) {
  usleep(100 * 1000);
  mem_budget_give(arg, 800);
  return NULL;
}

TEST(budget_waiter_wakes_on_give) {
  mskx_err e = {0};
  mem_budget *b;
  CHECK_OK(mem_budget_create(1000, 10000, &b, &e), &e);
  CHECK_OK(mem_budget_take(b, 800, "a", &e), &e);
  pthread_t t;
  pthread_create(&t, NULL, give_later, b);
  CHECK_OK(mem_budget_take(b, 900, "b", &e), &e);
  pthread_join(t, NULL);
  CHECK(mem_budget_used(b) == 900);
  mem_budget_destroy(b);
}

TEST_MAIN()
