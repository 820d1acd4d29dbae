/* The MURA paper's Table 2 (see paper.h); generated from data/mura_paper.json
 * and checked against it by tests/eval/test_metrics.c. */
#include "eval/paper.h"
#include <string.h>

/* {part, model, {radiologist 1, 2, 3}, leaderboard best}; each kappa is {value, lo, hi}. */
const paper_part paper_parts[] = {
    {"XR_ELBOW", {0.710, 0.674, 0.745}, {{0.850, 0.830, 0.871}, {0.710, 0.674, 0.745}, {0.719, 0.685, 0.752}}, 0.845},
    {"XR_FINGER", {0.389, 0.332, 0.446}, {{0.304, 0.249, 0.358}, {0.403, 0.339, 0.467}, {0.410, 0.358, 0.463}}, 0.600},
    {"XR_FOREARM", {0.737, 0.707, 0.766}, {{0.796, 0.772, 0.821}, {0.802, 0.779, 0.825}, {0.798, 0.774, 0.822}}, 0.867},
    {"XR_HAND", {0.851, 0.830, 0.871}, {{0.661, 0.623, 0.698}, {0.927, 0.917, 0.937}, {0.789, 0.762, 0.815}}, 0.851},
    {"XR_HUMERUS", {0.600, 0.558, 0.642}, {{0.867, 0.850, 0.883}, {0.733, 0.703, 0.764}, {0.933, 0.925, 0.942}}, 0.867},
    {"XR_SHOULDER", {0.729, 0.697, 0.760}, {{0.864, 0.847, 0.881}, {0.791, 0.765, 0.816}, {0.864, 0.847, 0.881}}, 0.933},
    {"XR_WRIST", {0.931, 0.922, 0.940}, {{0.791, 0.766, 0.817}, {0.931, 0.922, 0.940}, {0.931, 0.922, 0.940}}, 0.931},
    {"overall", {0.705, 0.700, 0.710}, {{0.731, 0.726, 0.735}, {0.763, 0.759, 0.767}, {0.778, 0.774, 0.782}}, 0.843},
};
const int paper_n_parts = (int)(sizeof paper_parts / sizeof paper_parts[0]);
const char *const paper_leaderboard_entry = "base-comb2-xuan-v3";

const paper_part *paper_find(const char *part) {
  for (int i = 0; i < paper_n_parts; i++)
    if (!strcmp(paper_parts[i].part, part)) return &paper_parts[i];
  return NULL;
}
