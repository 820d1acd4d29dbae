/* serve_queue_default: the default --queue of `mskx serve`, derived from the
 * model's measured seconds per image, its scheduler threads and the
 * deadline (docs/serve.md): floor(min(10 s, timeout / 2) * schedulers /
 * (3 * per_image_s)) within 32..128. serve_max_batch_default: the default
 * --max-batch, 16 when a pass of five 3-image studies is at least 5% faster
 * per image than one study, else 3. serve_retry_after: the queue's
 * estimated wait as a Retry-After, 1..30 s. */
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

TEST(max_batch_default_follows_the_rule) {
  /* 10% faster per image in a batch: studies are gathered. */
  CHECK(serve_max_batch_default(0.0625, 0.05625) == SERVE_DEFAULT_MAX_BATCH);
  /* Just past the 5% margin either way (1 - 0.05 = 0.95). */
  CHECK(serve_max_batch_default(1.0, 0.9499) == SERVE_DEFAULT_MAX_BATCH);
  CHECK(serve_max_batch_default(1.0, 0.9501) == SERVE_QUEUE_STUDY_IMAGES);
  /* Equal, or slower per image in a batch (densenet169 at 320 px on a
   * 2-core Xeon: 17.9 images/s at batch 3, 17.0 at 15): one study per pass. */
  CHECK(serve_max_batch_default(0.0625, 0.0625) == SERVE_QUEUE_STUDY_IMAGES);
  CHECK(serve_max_batch_default(1 / 17.9, 1 / 17.0) == SERVE_QUEUE_STUDY_IMAGES);
  /* Not measured (trial skipped or failed, probe failed): one study per pass. */
  CHECK(serve_max_batch_default(0.0625, 0) == SERVE_QUEUE_STUDY_IMAGES);
  CHECK(serve_max_batch_default(0, 0.01) == SERVE_QUEUE_STUDY_IMAGES);
  CHECK(serve_max_batch_default(-1, -1) == SERVE_QUEUE_STUDY_IMAGES);
}

TEST(retry_after_is_the_queues_wait) {
  /* 150 images at 62.5 ms, one scheduler: 9.375 s -> 10. */
  CHECK(serve_retry_after(0.0625, 150, 1) == 10);
  /* Two schedulers halve it: 4.6875 -> 5. */
  CHECK(serve_retry_after(0.0625, 150, 2) == 5);
  /* Exactly 2 s stays 2. */
  CHECK(serve_retry_after(0.0625, 32, 1) == 2);
  /* A short wait still says 1 s (HTTP's unit); a long one is capped. */
  CHECK(serve_retry_after(1e-4, 3, 1) == 1);
  CHECK(serve_retry_after(1.0, 1000, 1) == SERVE_RETRY_AFTER_MAX);
  /* Nothing queued or not estimated: 1 s. */
  CHECK(serve_retry_after(0.0625, 0, 1) == 1);
  CHECK(serve_retry_after(0, 100, 1) == 1);
  CHECK(serve_retry_after(0.0625, 100, 0) == 1);
}

TEST_MAIN()
