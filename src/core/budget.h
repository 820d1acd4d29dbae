/* A byte budget shared by threads: callers take bytes before allocating
 * them and give them back after freeing. Used to bound the memory that image
 * decoding holds across concurrent predictions (see docs/serve.md). */
#ifndef MSKX_CORE_BUDGET_H
#define MSKX_CORE_BUDGET_H
#include <stdint.h>
#include "mskx.h"

typedef struct mem_budget mem_budget;

/* cap: bytes that may be held at once (> 0). wait_ms: how long a take waits
 * for others to give bytes back before failing with MSKX_EBUSY. */
int mem_budget_create(uint64_t cap, int wait_ms, mem_budget **out, mskx_err *e);
void mem_budget_destroy(mem_budget *b);

/* Takes bytes: MSKX_ELIMIT (never waits) when bytes alone exceed the cap,
 * MSKX_EBUSY when they did not fit within the wait. what names the holder
 * in messages. A take of 0 bytes always succeeds. */
int mem_budget_take(mem_budget *b, uint64_t bytes, const char *what, mskx_err *e);
void mem_budget_give(mem_budget *b, uint64_t bytes);

uint64_t mem_budget_cap(const mem_budget *b);
/* Bytes held now (for tests and metrics). */
uint64_t mem_budget_used(mem_budget *b);

#endif
