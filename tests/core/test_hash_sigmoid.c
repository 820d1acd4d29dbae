/* The shared FNV-1a and sigmoid helpers: FNV-1a against the published 64-bit
 * test vectors (Fowler/Noll/Vo), piecewise hashing equal to one pass, and the
 * sigmoid against the textbook formula and finite at the extremes. */
#include <math.h>
#include "core/util.h"
#include "test.h"

TEST(fnv1a_published_vectors) {
  CHECK(fnv1a_str(FNV1A_INIT, "") == 0xcbf29ce484222325ULL);
  CHECK(fnv1a_str(FNV1A_INIT, "a") == 0xaf63dc4c8601ec8cULL);
  CHECK(fnv1a_str(FNV1A_INIT, "foobar") == 0x85944171f73967e8ULL);
  CHECK(fnv1a_str(FNV1A_INIT, NULL) == FNV1A_INIT);
}

TEST(fnv1a_piecewise_equals_one_pass) {
  uint64_t h = fnv1a_str(fnv1a_str(FNV1A_INIT, "foo"), "bar");
  CHECK(h == fnv1a(FNV1A_INIT, "foobar", 6));
}

TEST(sigmoid_matches_formula_and_stays_finite) {
  for (double z = -30; z <= 30; z += 0.25) CHECK(fabs(sigmoid(z) - 1 / (1 + exp(-z))) < 1e-15);
  CHECK(sigmoid(-1000) == 0.0 || (sigmoid(-1000) > 0 && sigmoid(-1000) < 1e-300));
  CHECK(sigmoid(1000) == 1.0);
  CHECK(sigmoid(0) == 0.5);
}

TEST_MAIN()
