/* The restricted state-dict unpickler on hand-written opcode sequences: the
 * value semantics Python's pickle has (integers, memo, marks, dict order,
 * protocol 4 framing), and refusals that name the reason. Whole checkpoints
 * written by torch.save are tested in tests/models/import_test.sh. */
#include "core/error.h"
#include "io/torch_pickle.h"
#include "test.h"

#define PARSE(bytes, docp, errp) pkl_parse((const unsigned char *)(bytes), sizeof(bytes) - 1, "t.pkl", docp, errp)

TEST(integers_like_python) {
  /* (LONG1 -2 as 0xfe, BININT -5, BININT2 65535, BININT1 7) tuple */
  static const char p[] = "\x80\x02(\x8a\x01\xfeJ\xfb\xff\xff\xffM\xff\xffK\x07t.";
  pkl_doc *d = NULL;
  mskx_err e = {0};
  CHECK_OK(PARSE(p, &d, &e), &e);
  CHECK_EQ_INT(d->root->kind, PKL_TUPLE);
  CHECK_EQ_INT(d->root->len, 4);
  CHECK_EQ_INT(d->root->items[0]->i, -2);
  CHECK_EQ_INT(d->root->items[1]->i, -5);
  CHECK_EQ_INT(d->root->items[2]->i, 65535);
  CHECK_EQ_INT(d->root->items[3]->i, 7);
  pkl_free(d);
}

TEST(dict_memo_and_last_value_wins) {
  /* {} memo0; MARK 'a' 1 'a' 2 SETITEMS; then [memo0] */
  static const char p[] = "\x80\x02}q\x00(X\x01\x00\x00\x00" "aK\x01X\x01\x00\x00\x00" "aK\x02u0]h\x00\x61.";
  pkl_doc *d = NULL;
  mskx_err e = {0};
  CHECK_OK(PARSE(p, &d, &e), &e);
  CHECK_EQ_INT(d->root->kind, PKL_LIST);
  const pkl_obj *dict = d->root->items[0];
  CHECK_EQ_INT(dict->kind, PKL_DICT);
  CHECK_EQ_INT(pkl_dict_get(dict, "a")->i, 2);
  pkl_free(d);
}

TEST(protocol4_frame_memoize_stack_global) {
  /* FRAME, SHORT_BINUNICODE module/name, STACK_GLOBAL OrderedDict, EMPTY_TUPLE, REDUCE, MEMOIZE */
  static const char p[] = "\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00\x8c\x0b" "collections\x8c\x0b"
                          "OrderedDict\x93)R\x94.";
  pkl_doc *d = NULL;
  mskx_err e = {0};
  CHECK_OK(PARSE(p, &d, &e), &e);
  CHECK_EQ_INT(d->root->kind, PKL_DICT);
  pkl_free(d);
}

/* The parse must fail with code and a message containing what. */
#define EXPECT_REFUSED(bytes, want_code, what)                                                    \
  do {                                                                                           \
    pkl_doc *d_ = NULL;                                                                          \
    mskx_err e_ = {0};                                                                           \
    int rc_ = PARSE(bytes, &d_, &e_);                                                            \
    if (rc_ == 0) pkl_free(d_);                                                                  \
    CHECKF(rc_ == (want_code), "expected code %d, got %d (%s)", want_code, rc_, e_.msg);         \
    CHECKF(strstr(e_.msg, what) && strstr(e_.msg, "t.pkl"), "message '%s' lacks '%s'", e_.msg, what); \
  } while (0)

TEST(refuses_code_and_unknown_opcodes) {
  EXPECT_REFUSED("\x80\x02\x63posix\nsystem\n.", MSKX_EUNSUPPORTED, "'posix.system'");
  EXPECT_REFUSED("\x80\x04\x8c\x08\x62uiltins\x8c\x04\x65val\x93.", MSKX_EUNSUPPORTED, "'builtins.eval'");
  EXPECT_REFUSED("\x80\x02\x63torch\nload\n.", MSKX_EUNSUPPORTED, "'torch.load'");
  EXPECT_REFUSED("\x80\x02(S'x'\n.", MSKX_EFORMAT, "opcode 0x53");     /* text STRING (protocol 0) */
  EXPECT_REFUSED("\x80\x02)\x81.", MSKX_EFORMAT, "stack underflow");   /* NEWOBJ without a class */
  EXPECT_REFUSED("\x80\x02\x63torch\nFloatStorage\n)R.", MSKX_EFORMAT, "storage type is called");
}

TEST(refuses_malformed_structure) {
  EXPECT_REFUSED("\x80\x02K\x01K\x02.", MSKX_EFORMAT, "2 values on the stack");
  EXPECT_REFUSED("\x80\x02t.", MSKX_EFORMAT, "no MARK");
  EXPECT_REFUSED("\x80\x02X\xff\xff\xff\x00", MSKX_ELIMIT, "limit");
  EXPECT_REFUSED("\x80\x02X\x10\x00\x00\x00", MSKX_EFORMAT, "truncated");
  EXPECT_REFUSED("\x80\x02", MSKX_EFORMAT, "truncated");
  EXPECT_REFUSED("\x80\x02K\x01K\x02\x61.", MSKX_EFORMAT, "APPEND to a int");
  EXPECT_REFUSED("\x80\x02\x8a\x09\x01\x01\x01\x01\x01\x01\x01\x01\x01.", MSKX_EFORMAT, "wider than 64 bits");
  EXPECT_REFUSED("\x80\x09.", MSKX_EFORMAT, "protocol");
  /* a tensor whose "storage" is an int */
  EXPECT_REFUSED("\x80\x02\x63torch._utils\n_rebuild_tensor_v2\n(K\x00K\x00)))\x89NtR.", MSKX_EFORMAT,
                 "without a storage");
}

int main(int argc, char **argv) { return test_main(argc, argv); }
