/* serve_queue_default: the default --queue of `mskx serve`, derived from the
 * model's measured seconds per image, its scheduler threads and the
 * deadline (docs/serve.md): floor(min(10 s, timeout / 2) * schedulers /
 * (3 * per_image_s)) within 32..128. */
#include "serve/serve.h"
#include "test.h"

TEST(queue_default_follows_the_rule) {
  /* 10 s of work at 62.5 ms per image (values exact in binary), one
   * scheduler: 10 / 0.1875 = 53.3 -> 53. */
  CHECK(serve_queue_default(0.0625, 1, 30000) == 53);
  /* Two schedulers compute twice as much in the same time. */
  CHECK(serve_queue_default(0.0625, 2, 30000) == 106);
  CHECK(serve_queue_default(0.125, 2, 30000) == 53);
  /* A 15 s deadline: 7.5 s of work, 7.5 / 0.1875 = 40. */
  CHECK(serve_queue_default(0.0625, 1, 15000) == 40);
  /* Beyond 20 s the deadline no longer matters. */
  CHECK(serve_queue_default(0.0625, 1, 3600000) == 53);
  /* Slow models and short deadlines get the floor, fast ones the cap. */
  CHECK(serve_queue_default(1.0, 1, 30000) == SERVE_QUEUE_MIN);
  CHECK(serve_queue_default(0.05, 1, 100) == SERVE_QUEUE_MIN);
  CHECK(serve_queue_default(1e-4, 1, 30000) == SERVE_QUEUE_MAX);
  /* Not measured: the floor. */
  CHECK(serve_queue_default(0, 1, 30000) == SERVE_QUEUE_MIN);
  CHECK(serve_queue_default(-1, 1, 30000) == SERVE_QUEUE_MIN);
  CHECK(serve_queue_default(0.05, 0, 30000) == SERVE_QUEUE_MIN);
}

TEST_MAIN()
