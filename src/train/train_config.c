/* Training configuration: the options table (every option's one
 * definition), defaults (the MURA paper's recipe), validation and the
 * config.json round trip. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#include "models/net.h"
#include "train/class_weights.h"
#include "train/trainer.h"

/* MURA paper (Rajpurkar et al. 2017, section 3): DenseNet-169, batch 8,
 * Adam lr 1e-4 (betas 0.9, 0.999), lr / 10 each time the validation loss
 * plateaus after an epoch, 320x320 inputs, lateral inversions and rotations
 * up to 30 degrees, per-part class weights. */
#define PAPER_ARCH "densenet169"
#define PAPER_BATCH 8
#define PAPER_LR 1e-4
#define PAPER_SIZE 320
#define PAPER_OPTIMIZER "adam"
#define PAPER_SCHEDULE "plateau"
#define PAPER_MONITOR "val_loss"
#define PAPER_FACTOR 0.1
#define PAPER_PATIENCE 1
#define PAPER_HFLIP 0.5
#define PAPER_ROTATE 30.0
/* Not from the paper, which trains until the plateaus stop helping. */
#define DEFAULT_EPOCHS 10
#define DEFAULT_LOADER_THREADS 2
/* A few unreadable files in a large dataset are tolerated (and reported); a
 * larger share means a broken dataset or disk, not a few bad scans. */
#define DEFAULT_MAX_SKIPPED 0.01
/* Largest input side: activations of a DenseNet at 2048 px already need tens of GiB per batch. */
#define TRAIN_SIZE_MAX 2048
#define TRAIN_EPOCHS_MAX 100000
#define TRAIN_BATCH_MAX 4096

static int check_class_weights(const char *v, mskx_err *e) {
  cw_spec cw;
  return cw_parse(v, &cw, e);
}

#define FLD(m) .off = offsetof(train_config, m), .size = sizeof(((train_config *)0)->m)
#define RANGE(a, b) .lo = (a), .hi = (b)
#define G_DATA "Data and model"
#define G_OPT "Optimisation (docs/training_options.md)"
#define G_SCHED "Learning-rate schedule"
#define G_AUG "Augmentation (training only; defaults: the paper's flips and 30 degree rotations)"
#define G_OTHER "Other"
#define G_DIST "Data-parallel training (docs/distributed.md)"
#define G_DICOM "DICOM images (.dcm files in the dataset, docs/dicom.md)"
#define TORCH_ADAM "torch.optim.Adam (other optimizers: their own, optim_config_defaults)"
#define KERAS_PLATEAU "Keras ReduceLROnPlateau (schedule_config_defaults)"

const opt_spec train_options[] = {
    /* ---- data and model ---- */
    {.key = "data", .flag = "data", .type = OPT_PATH, FLD(data), .arg = "DIR", .group = G_DATA,
     .help = "dataset (MURA-v1.1 folder, its parent, or a generic CSV)", .flags = OPT_LOCAL | OPT_REQUIRED},
    {.key = "out", .flag = "out", .type = OPT_PATH, FLD(out), .arg = "RUN_DIR", .group = G_DATA,
     .help = "run folder: config.json, log.jsonl, last/best.safetensors", .flags = OPT_LOCAL | OPT_REQUIRED},
    {.key = "arch", .flag = "arch", .type = OPT_STRING, FLD(arch), .def_str = PAPER_ARCH, .source = "MURA paper",
     .arg = "ARCH", .group = G_DATA,
     .help = "an architecture from the list at the end of --help; with\n--per-part "
             "a map of parts: XR_HAND=densenet121,densenet169\n(the unnamed entry is the default)"},
    {.key = "aux_weight", .flag = "aux-weight", .type = OPT_DOUBLE, FLD(aux_weight), RANGE(0, 100),
     .def = INCEPTION_AUX_WEIGHT, .source = "torchvision's Inception-v3 recipe", .arg = "W", .group = G_DATA,
     .help = "inception_v3: loss = main + W * auxiliary head's;\n"
             "0 turns the auxiliary head off and allows sizes from 75"},
    {.key = "parts", .flag = "parts", .type = OPT_STRING, FLD(parts), .def_str = "all", .source = "MURA paper (one model)",
     .arg = "all|P1,P2", .group = G_DATA, .help = "body parts to train on (all: one model)"},
    {.key = "per_part", .flag = "per-part", .type = OPT_BOOL, FLD(per_part), .group = G_DATA,
     .help = "one model per part, plus RUN_DIR/bundle.json routing studies"},
    {.key = "size", .flag = "size", .type = OPT_INT, FLD(size), RANGE(1, TRAIN_SIZE_MAX), .def = PAPER_SIZE,
     .source = "MURA paper; the arch's own otherwise (inception_v3: 299, torchvision)", .arg = "S", .group = G_DATA,
     .help = "input size (default: the arch's; 320 for the DenseNets and ResNet)"},
    {.key = "keep_aspect", .flag = "keep-aspect", .type = OPT_BOOL, FLD(keep_aspect), .group = G_DATA,
     .help = "pad to a square instead of stretching"},
    {.key = "batch", .flag = "batch", .type = OPT_INT, FLD(batch), RANGE(1, TRAIN_BATCH_MAX), .def = PAPER_BATCH,
     .source = "MURA paper", .arg = "B", .group = G_DATA, .help = "batch size (with mpirun: the global batch)"},
    {.key = "epochs", .flag = "epochs", .type = OPT_INT, FLD(epochs), RANGE(1, TRAIN_EPOCHS_MAX), .def = DEFAULT_EPOCHS,
     .source = "mskx", .arg = "N", .group = G_DATA, .help = "epochs (with --resume: extends the run to N)"},
    {.key = "seed", .flag = "seed", .type = OPT_U64, FLD(seed), RANGE(0, 18446744073709551615.0), .def = 0,
     .source = "mskx", .arg = "S", .group = G_DATA,
     .help = "seed of the initialisation, the data order and the augmentation"},
    {.key = "threads", .flag = "threads", .type = OPT_INT, FLD(threads), RANGE(1, OPT_MAX_THREADS), .def = 0, .source = "OpenMP",
     .arg = "T", .group = G_DATA, .flags = OPT_LOCAL | OPT_HIDE_DEFAULT,
     .help = "compute threads (default: OpenMP's, all cores); pinned one per CPU\n"
             "(MSKX_PIN=0 or OMP_PROC_BIND turns that off)"},
    {.key = "loader_threads", .flag = "loader-threads", .type = OPT_INT, FLD(loader_threads), RANGE(1, 256),
     .def = DEFAULT_LOADER_THREADS, .source = "mskx", .arg = "T", .group = G_DATA, .flags = OPT_LOCAL,
     .help = "image decoding threads"},
    {.key = "precision_bf16", .flag = "precision", .type = OPT_CHOICE, FLD(prec), .choices = "fp32|bf16|auto",
     .def_str = "fp32", .source = "mskx", .arg = "fp32|bf16|auto", .group = G_DATA,
     .help = "bf16: mixed precision, fp32 master weights and optimizer state;\n"
             "auto: the faster on this CPU (one step of each timed)"},
    {.key = "pretrained", .flag = "pretrained", .type = OPT_PATH, FLD(pretrained), .arg = "FILE", .group = G_DATA,
     .flags = OPT_LOCAL,
     .help = "e.g. ImageNet weights: torchvision .pth, Keras .h5 (DenseNets) or\n"
             "safetensors, by content (see mskx import --help); a 1000-way\n"
             "head is re-initialised, Keras's batch-norm epsilon kept\n"
             "(inception_v3: transform_input on, as torchvision's ImageNet\n"
             "weights, unless the file's metadata says transform_input=0)"},
    {.key = "freeze_backbone_epochs", .flag = "freeze-backbone-epochs", .type = OPT_INT, FLD(freeze_backbone_epochs),
     RANGE(0, TRAIN_EPOCHS_MAX), .arg = "K", .group = G_DATA, .help = "train only the classifier for the first K epochs"},
    /* ---- optimisation: the optim rows take the chosen optimizer's own
     * defaults unless it is the paper's (train_config_resolve) ---- */
    {.key = "optimizer", .flag = "optimizer", .type = OPT_ENUM, FLD(optim.name), .choices = "adam|adamw|sgd|rmsprop",
     .def_str = PAPER_OPTIMIZER, .source = "MURA paper", .arg = "NAME", .group = G_OPT,
     .help = "adam|adamw|sgd|rmsprop; each brings its own defaults below"},
    {.key = "lr", .flag = "lr", .type = OPT_DOUBLE, FLD(optim.lr), RANGE(0, 1000), .def = PAPER_LR,
     .source = "MURA paper with adam; other optimizers: their own", .arg = "LR", .group = G_OPT,
     .word = "auto", .word_off = offsetof(train_config, lr_auto),
     .help = "learning rate (default 1e-4 with adam, else the optimizer's own);\n"
             "auto: sweep with the learning-rate finder first (mskx lr-find's defaults)\n"
             "and train with the minimum's tenth; recorded in config.json",
     .flags = OPT_HIDE_DEFAULT},
    {.key = "lr_auto", .type = OPT_BOOL, FLD(lr_auto), .help = "--lr auto was given"},
    {.key = "lr_found_steepest", .type = OPT_DOUBLE, FLD(lr_found_steepest), RANGE(0, INFINITY),
     .help = "--lr auto: the sweep's steepest descent (0 before it ran)"},
    {.key = "lr_found_min_tenth", .type = OPT_DOUBLE, FLD(lr_found_min_tenth), RANGE(0, INFINITY),
     .help = "--lr auto: a tenth of the sweep's minimum (0 before it ran)"},
    {.key = "beta1", .flag = "beta1", .type = OPT_DOUBLE, FLD(optim.beta1), RANGE(0, 1), .def = 0.9,
     .source = TORCH_ADAM, .arg = "B", .group = G_OPT, .help = "adam, adamw: first-moment decay"},
    {.key = "beta2", .flag = "beta2", .type = OPT_DOUBLE, FLD(optim.beta2), RANGE(0, 1), .def = 0.999,
     .source = TORCH_ADAM, .arg = "B", .group = G_OPT, .help = "adam, adamw: second-moment decay"},
    {.key = "eps", .flag = "eps", .type = OPT_DOUBLE, FLD(optim.eps), RANGE(0, 1), .def = 1e-8, .source = TORCH_ADAM,
     .arg = "E", .group = G_OPT, .flags = OPT_HIDE_DEFAULT,
     .help = "adam, adamw, rmsprop: denominator term (default 1e-8; rmsprop 1e-7)"},
    {.key = "weight_decay", .flag = "weight-decay", .type = OPT_DOUBLE, FLD(optim.weight_decay), RANGE(0, 10), .def = 0,
     .source = TORCH_ADAM, .arg = "W", .group = G_OPT, .flags = OPT_HIDE_DEFAULT,
     .help = "L2 added to the gradient; adamw: decoupled (default 0; adamw 0.01)"},
    {.key = "momentum", .flag = "momentum", .type = OPT_DOUBLE, FLD(optim.momentum), RANGE(0, 1), .def = 0,
     .source = "torch.optim.SGD", .arg = "M", .group = G_OPT, .help = "sgd, rmsprop"},
    {.key = "nesterov", .flag = "nesterov", .type = OPT_BOOL, FLD(optim.nesterov), .group = G_OPT,
     .help = "sgd: Nesterov momentum (needs --momentum > 0)"},
    {.key = "rho", .flag = "rho", .type = OPT_DOUBLE, FLD(optim.rho), RANGE(0, 1), .def = 0,
     .source = "tf.keras.optimizers.RMSprop: 0.9", .arg = "R", .group = G_OPT, .flags = OPT_HIDE_DEFAULT,
     .help = "rmsprop: squared-gradient decay (default 0.9)"},
    {.key = "class_weights", .flag = "class-weights", .type = OPT_STRING, FLD(class_weights), .def_str = "mura",
     .source = "MURA paper (per-part weights)", .arg = "mura|balanced|none|0:W0,1:W1", .group = G_OPT,
     .check = check_class_weights, .help = "loss weights of the two classes (mura: the paper's per part)"},
    {.key = "early_stop", .flag = "early-stop", .type = OPT_INT, FLD(early_stop), RANGE(0, TRAIN_EPOCHS_MAX),
     .arg = "N", .group = G_OPT, .help = "stop after N epochs without improvement (0: off)"},
    {.key = "select", .flag = "select", .type = OPT_ENUM, FLD(select), .choices = "kappa|loss", .def_str = "kappa",
     .source = "MURA paper (Cohen's kappa)", .arg = "kappa|loss", .group = G_OPT,
     .help = "best checkpoint by validation kappa or loss"},
    /* ---- schedule: the sched rows take the chosen schedule's own defaults
     * unless it is the paper's ---- */
    {.key = "schedule", .flag = "schedule", .type = OPT_ENUM, FLD(sched.name), .choices = "constant|step|plateau|cosine",
     .def_str = PAPER_SCHEDULE, .source = "MURA paper", .arg = "NAME", .group = G_SCHED,
     .help = "constant|step|plateau|cosine"},
    {.key = "schedule_lr0", .type = OPT_DOUBLE, FLD(sched.lr0), RANGE(0, 1000), .def = PAPER_LR,
     .help = "the schedule's initial rate: --lr"},
    {.key = "drop", .flag = "drop", .type = OPT_DOUBLE, FLD(sched.drop), RANGE(0, 1), .def = 0.5,
     .source = "Keras step-decay example", .arg = "D", .group = G_SCHED, .help = "step: lr0 * D^floor((1+epoch)/N)"},
    {.key = "epochs_drop", .flag = "epochs-drop", .type = OPT_DOUBLE, FLD(sched.epochs_drop), RANGE(1, 1e6), .def = 10,
     .source = "Keras step-decay example", .arg = "N", .group = G_SCHED, .help = "step: epochs per drop"},
    {.key = "monitor", .flag = "monitor", .type = OPT_ENUM, FLD(sched.monitor), .choices = "val_loss|val_kappa",
     .def_str = PAPER_MONITOR, .source = "MURA paper", .arg = "val_loss|val_kappa", .group = G_SCHED,
     .help = "plateau: the validation metric watched"},
    {.key = "factor", .flag = "factor", .type = OPT_DOUBLE, FLD(sched.factor), RANGE(0, 1), .def = PAPER_FACTOR,
     .source = "MURA paper (lr / 10)", .arg = "F", .group = G_SCHED, .help = "plateau: lr *= F on a plateau"},
    {.key = "patience", .flag = "patience", .type = OPT_INT, FLD(sched.patience), RANGE(0, 1000000),
     .def = PAPER_PATIENCE, .source = "MURA paper (after each epoch without improvement; Keras: 10)", .arg = "P",
     .group = G_SCHED, .help = "plateau: epochs without improvement before reducing"},
    {.key = "min_delta", .flag = "min-delta", .type = OPT_DOUBLE, FLD(sched.min_delta), RANGE(0, 1e6), .def = 1e-4,
     .source = KERAS_PLATEAU, .arg = "D", .group = G_SCHED, .help = "plateau: smallest change that is an improvement"},
    {.key = "cooldown", .flag = "cooldown", .type = OPT_INT, FLD(sched.cooldown), RANGE(0, 1000000), .def = 0,
     .source = KERAS_PLATEAU, .arg = "C", .group = G_SCHED, .help = "plateau: epochs to wait after a reduction"},
    {.key = "min_lr", .flag = "min-lr", .type = OPT_DOUBLE, FLD(sched.min_lr), RANGE(0, 10), .def = 0,
     .source = KERAS_PLATEAU, .arg = "L", .group = G_SCHED, .help = "plateau, cosine: the lowest rate"},
    {.key = "warmup_epochs", .flag = "warmup-epochs", .type = OPT_DOUBLE, FLD(sched.warmup_epochs), RANGE(0, 1e6),
     .def = 0, .source = "mskx", .arg = "W", .group = G_SCHED, .help = "cosine: linear warmup epochs (may be fractional)"},
    {.key = "schedule_epochs", .type = OPT_INT, FLD(sched.epochs), RANGE(0, TRAIN_EPOCHS_MAX),
     .help = "cosine: epochs annealed over: --epochs"},
    /* ---- augmentation ---- */
    {.key = "aug_hflip", .flag = "hflip", .type = OPT_FLOAT, FLD(aug.p_hflip), RANGE(0, 1), .def = PAPER_HFLIP,
     .source = "MURA paper (lateral inversions)", .arg = "P", .group = G_AUG, .help = "horizontal flip probability"},
    {.key = "aug_vflip", .flag = "vflip", .type = OPT_FLOAT, FLD(aug.p_vflip), RANGE(0, 1), .arg = "P", .group = G_AUG,
     .help = "vertical flip probability"},
    {.key = "aug_rotate", .flag = "rotate", .type = OPT_FLOAT, FLD(aug.rotate_deg), RANGE(0, 180), .def = PAPER_ROTATE,
     .source = "MURA paper", .arg = "DEG", .group = G_AUG, .help = "rotation, uniform in [-DEG, DEG]"},
    {.key = "aug_shift", .flag = "shift", .type = OPT_FLOAT, FLD(aug.shift_frac), RANGE(0, 0.99), .arg = "F",
     .group = G_AUG, .help = "translation, a fraction of the width and height"},
    {.key = "aug_zoom", .flag = "zoom", .type = OPT_FLOAT, FLD(aug.zoom), RANGE(0, 0.99), .arg = "F", .group = G_AUG,
     .help = "scale uniform in [1-F, 1+F]"},
    {.key = "aug_brightness", .flag = "brightness", .type = OPT_FLOAT, FLD(aug.brightness), RANGE(0, 1), .arg = "F",
     .group = G_AUG, .help = "added brightness, uniform in [-F, F]"},
    {.key = "aug_contrast", .flag = "contrast", .type = OPT_FLOAT, FLD(aug.contrast), RANGE(0, 0.99), .arg = "F",
     .group = G_AUG, .help = "contrast factor about 0.5, uniform in [1-F, 1+F]"},
    {.flag = "no-augment", .type = OPT_CLEAR, FLD(aug), .group = G_AUG,
     .help = "no augmentation (every value above 0; later options still apply)"},
    /* ---- other ---- */
    {.key = "strict", .flag = "strict", .type = OPT_BOOL, FLD(strict), .group = G_OTHER,
     .help = "unreadable images are errors (default: skipped and counted)"},
    {.key = "max_skipped", .flag = "max-skipped", .type = OPT_DOUBLE, FLD(max_skipped), RANGE(0, 1),
     .def = DEFAULT_MAX_SKIPPED, .source = "mskx", .arg = "F", .group = G_OTHER,
     .help = "fraction of an epoch's training images that may be skipped as\n"
             "unreadable; beyond it, or when none can be read, training stops\nwith an error"},
    {.key = "cache", .flag = "cache", .type = OPT_BOOL, FLD(cache), .group = G_OTHER, .flags = OPT_LOCAL,
     .help = "keep decoded, resized images in a memory-mapped cache"},
    {.key = "cache_budget_mb", .flag = "cache-budget", .type = OPT_INT, FLD(cache_budget_mb), RANGE(0, 1 << 30),
     .def = -1, .source = "mskx", .arg = "MB", .group = G_OTHER, .flags = OPT_LOCAL | OPT_HIDE_DEFAULT,
     .help = "without --cache, use the cache anyway when the decoded images\n"
             "fit MB (default: a quarter of the available memory; 0: never)"},
    {.key = "keep_plans", .flag = "keep-plans", .type = OPT_CHOICE, FLD(keep_plans), .choices = "auto|on|off",
     .def_str = "auto", .source = "mskx (docs/benchmarks.md)", .arg = "auto|on|off", .group = G_OTHER,
     .flags = OPT_LOCAL,
     .help = "keep the training and validation plans resident (no rebuilding\n"
             "at each switch); auto: while the memory available allows it"},
    {.key = "max_batches", .flag = "max-batches", .type = OPT_INT, FLD(max_batches), RANGE(0, 1 << 30), .arg = "N",
     .group = G_OTHER, .help = "at most N training batches per epoch (0: all; quick experiments)"},
    /* ---- data-parallel ---- */
    {.key = "sync_bn", .flag = "sync-bn", .type = OPT_BOOL, FLD(sync_bn), .group = G_DIST,
     .help = "batch-norm statistics over all processes (default: per process)"},
    {.key = "bucket_kb", .flag = "bucket-kb", .type = OPT_INT, FLD(bucket_kb), RANGE(1, 1 << 21), .arg = "K",
     .group = G_DIST, .flags = OPT_NOT_SAVED | OPT_HIDE_DEFAULT,
     .help = "gradient all-reduce bucket size in KiB (default 4096)"},
    /* ---- DICOM ---- */
    {.key = "dicom_window", .flag = "dicom-window", .type = OPT_STRING, FLD(dicom_window), .def_str = "auto",
     .source = "docs/dicom.md", .arg = "auto|minmax|C,W", .group = G_DICOM, .check = dicom_check_window,
     .help = "DICOM files without a VOI window: percentile window (auto)\n"
             "or full range (minmax); C,W overrides every file's window"},
    {.key = "dicom_frames", .flag = "dicom-frames", .type = OPT_STRING, FLD(dicom_frames), .def_str = "all",
     .source = "docs/dicom.md", .arg = "all|first", .group = G_DICOM, .check = dicom_check_frames,
     .help = "multi-frame DICOM: every frame an image (all) or only the first"},
};

const size_t train_options_count = sizeof train_options / sizeof train_options[0];

_Static_assert(sizeof(precision) == sizeof(int), "OPT_CHOICE fields are ints");
_Static_assert(TRAIN_KEEP_PLANS_AUTO == 0 && TRAIN_KEEP_PLANS_ON == 1 && TRAIN_KEEP_PLANS_OFF == 2,
               "--keep-plans's choices are auto|on|off in this order");
_Static_assert(sizeof train_options / sizeof *train_options <= TRAIN_OPTIONS_MAX, "raise TRAIN_OPTIONS_MAX");

void train_config_default(train_config *c) {
  memset(c, 0, sizeof *c);
  opt_defaults(train_options, train_options_count, c);
  train_config_resolve(c, NULL, NULL);  /* the schedule's epochs follow --epochs; cannot fail on the defaults */
}

/* The rows whose field lies inside [off, off + size) of train_config. */
static int row_within(const opt_spec *s, size_t off, size_t size) { return s->off >= off && s->off < off + size; }

/* Defaults of the rows inside a sub-struct, then what was given back. */
static void restore_given(const train_config *given, train_config *c, const unsigned char *set, size_t off,
                          size_t size, int table_defaults) {
  for (size_t i = 0; i < train_options_count; i++) {
    const opt_spec *s = &train_options[i];
    if (!row_within(s, off, size) || s->type == OPT_CLEAR) continue;
    if (table_defaults) opt_defaults(s, 1, c);
    if (set && set[i]) memcpy((char *)c + s->off, (const char *)given + s->off, s->size);
  }
}

int train_config_resolve(train_config *c, const unsigned char *set, mskx_err *e) {
  const train_config given = *c;
  int rc = optim_config_defaults(given.optim.name, &c->optim, e);
  if (rc) return err_prefix(e, "--optimizer"), rc;
  restore_given(&given, c, set, offsetof(train_config, optim), sizeof c->optim,
                !strcmp(given.optim.name, PAPER_OPTIMIZER));
  if ((rc = schedule_config_defaults(given.sched.name, c->optim.lr, &c->sched, e))) return err_prefix(e, "--schedule"), rc;
  restore_given(&given, c, set, offsetof(train_config, sched), sizeof c->sched,
                !strcmp(given.sched.name, PAPER_SCHEDULE));
  c->sched.lr0 = c->optim.lr;
  c->sched.epochs = c->epochs;
  int size_set = set && set[opt_find(train_options, train_options_count, "size")];
  int aux_set = set && set[opt_find(train_options, train_options_count, "aux-weight")];
  /* The arch's own input size (Inception-v3's 299); an arch map keeps the paper's. */
  if (!size_set && arch_default_size(c->arch)) c->size = arch_default_size(c->arch);
  arch_spec as;
  mskx_err ae = {0};
  if (aux_set && (arch_parse(c->arch, &as, &ae) || !arch_has_aux(&as)))
    return err_set(e, MSKX_EINVAL, "--aux-weight: arch %s has no auxiliary classifier (inception_v3 has)", c->arch);
  return MSKX_OK;
}

int train_config_dicom(const train_config *c, dicom_options *o, mskx_err *e) {
  memset(o, 0, sizeof *o);
  int rc = dicom_options_parse_window(c->dicom_window, o, e);
  if (!rc) rc = dicom_options_parse_frames(c->dicom_frames, o, e);
  return rc;
}

/* ---- arch maps ---- */

typedef struct map_entry {
  char part[64];               /* "" for the default entry */
  char arch[TRAIN_ARCH_MAX];
} map_entry;

static int is_part_key(const char *t, size_t len) {
  if (len == 0 || len >= 64 || !isupper((unsigned char)t[0])) return 0;
  for (size_t i = 0; i < len; i++)
    if (!isupper((unsigned char)t[i]) && !isdigit((unsigned char)t[i]) && t[i] != '_') return 0;
  return 1;
}

/* The entries of an arch string (one default entry when it names no part);
 * *out malloc'd. */
static int map_parse(const char *s, map_entry **out, int *n, mskx_err *e) {
  *out = NULL;
  *n = 0;
  size_t len = strlen(s);
  if (len == 0) return err_set(e, MSKX_EINVAL, "--arch is empty");
  if (len >= TRAIN_ARCH_MAX) return err_set(e, MSKX_EINVAL, "--arch is too long");
  map_entry *m = calloc(TRAIN_ARCH_MAP_MAX, sizeof *m);
  char *buf = malloc(len + 1);
  if (!m || !buf) {
    free(m);
    free(buf);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  memcpy(buf, s, len + 1);
  int k = 0, rc = MSKX_OK;
  char *p = buf;
  while (!rc) {
    char *comma = strchr(p, ',');
    if (comma) *comma = 0;
    char *eq = strchr(p, '=');
    if (!*p) {
      rc = err_set(e, MSKX_EINVAL, "--arch %s: an empty entry", s);
    } else if ((eq && is_part_key(p, (size_t)(eq - p))) || strchr(p, ':') || !eq) {
      int named = eq && is_part_key(p, (size_t)(eq - p));
      const char *a = named ? eq + 1 : p;
      if (k == TRAIN_ARCH_MAP_MAX) {
        rc = err_set(e, MSKX_EINVAL, "--arch: more than %d entries", TRAIN_ARCH_MAP_MAX);
        break;
      }
      if (named) snprintf(m[k].part, sizeof m[k].part, "%.*s", (int)(eq - p), p);
      if (!*a) rc = err_set(e, MSKX_EINVAL, "--arch: %s has no architecture", m[k].part);
      snprintf(m[k].arch, sizeof m[k].arch, "%s", a);
      for (int j = 0; !rc && j < k; j++)
        if (!strcmp(m[j].part, m[k].part))
          rc = m[k].part[0] ? err_set(e, MSKX_EINVAL, "--arch: %s appears twice", m[k].part)
                            : err_set(e, MSKX_EINVAL, "--arch: two default entries (%s and %s); name the parts as "
                                      "PART=ARCH", m[j].arch, m[k].arch);
      k++;
    } else if (k == 0) {
      rc = err_set(e, MSKX_EINVAL, "--arch: '%s' is not an architecture", p);
    } else {  /* an option of the custom architecture before it */
      size_t used = strlen(m[k - 1].arch);
      snprintf(m[k - 1].arch + used, sizeof m[k - 1].arch - used, ",%s", p);
    }
    if (!comma) break;
    p = comma + 1;
  }
  free(buf);
  if (rc) {
    free(m);
    return rc;
  }
  *out = m;
  *n = k;
  return MSKX_OK;
}

int train_arch_is_map(const char *arch) {
  map_entry *m;
  int n;
  if (map_parse(arch, &m, &n, NULL)) return 0;
  int named = 0;
  for (int i = 0; i < n; i++) named |= m[i].part[0] != 0;
  free(m);
  return named;
}

/* A map key names a part as the dataset does ("XR_HAND") or without "XR_". */
static int key_matches(const char *key, const char *part) {
  return !strcmp(key, part) || (!strncmp(part, "XR_", 3) && !strcmp(key, part + 3));
}

int train_arch_for(const char *arch, const char *part, char *out, size_t n, mskx_err *e) {
  map_entry *m;
  int k, rc = map_parse(arch, &m, &k, e);
  if (rc) return rc;
  int hit = -1, dflt = -1, named = 0;
  for (int i = 0; i < k; i++) {
    named |= m[i].part[0] != 0;
    if (!m[i].part[0]) dflt = i;
    else if (part && key_matches(m[i].part, part)) hit = i;
  }
  if (!named) {  /* one architecture: the string as given */
    free(m);
    if (strlen(arch) >= n) return err_set(e, MSKX_EINVAL, "--arch is too long");
    strcpy(out, arch);
    return MSKX_OK;
  }
  if (hit < 0) hit = dflt;
  if (hit < 0)
    rc = part ? err_set(e, MSKX_EINVAL, "--arch: no architecture for %s and no default entry", part)
              : err_set(e, MSKX_EINVAL, "--arch: the map has no default entry");
  else if (strlen(m[hit].arch) >= n)
    rc = err_set(e, MSKX_EINVAL, "--arch: %s is too long", m[hit].arch);
  else
    strcpy(out, m[hit].arch);
  free(m);
  return rc;
}

static int check_arch(const char *arch, int size, double aux_weight, mskx_err *e) {
  arch_spec a;
  int rc = arch_parse(arch, &a, e);
  if (rc) return err_prefix(e, "--arch");
  int aux = arch_has_aux(&a) && aux_weight > 0;
  int minsz = arch_min_size(&a, aux), mult = arch_size_multiple(&a);
  if (size < minsz) {
    if (aux)
      return err_set(e, MSKX_EINVAL,
                     "--size %d: %s needs at least %d with its auxiliary classifier (--aux-weight 0 allows %d)", size,
                     arch, minsz, arch_min_size(&a, 0));
    return err_set(e, MSKX_EINVAL, "--size %d: %s needs at least %d", size, arch, minsz);
  }
  if (size % mult) return err_set(e, MSKX_EINVAL, "--size %d: %s needs a multiple of %d", size, arch, mult);
  return MSKX_OK;
}

int train_config_validate(const train_config *c, mskx_err *e) {
  /* Each option alone (the table's ranges and choices), then the options together. */
  int rc = opt_check_all(train_options, train_options_count, c, e);
  if (rc) return rc;
  map_entry *m;
  int k;
  if ((rc = map_parse(c->arch, &m, &k, e))) return rc;
  int named = 0;
  for (int i = 0; i < k; i++) named |= m[i].part[0] != 0;
  if (!named) rc = check_arch(c->arch, c->size, c->aux_weight, e);
  for (int i = 0; named && !rc && i < k; i++)
    if ((rc = check_arch(m[i].arch, c->size, c->aux_weight, e)) && m[i].part[0]) err_prefix(e, "%s", m[i].part);
  free(m);
  if (rc) return rc;
  if (named && !c->per_part)
    return err_set(e, MSKX_EINVAL, "--arch %s: an arch map (PART=ARCH entries) needs --per-part", c->arch);
  if ((rc = optim_config_validate(&c->optim, e))) return rc;
  return schedule_config_validate(&c->sched, e);
}

/* ---- JSON ---- */

#define CONFIG_FORMAT "mskx-train-config-1"

char *train_config_to_json(const train_config *c) {
  cJSON *o = cJSON_CreateObject();
  char *s = NULL;
  if (o && cJSON_AddStringToObject(o, "format", CONFIG_FORMAT) &&
      !opt_to_json(train_options, train_options_count, c, o, NULL))
    s = cJSON_Print(o);
  cJSON_Delete(o);
  return s;
}

int train_config_from_json(const char *text, const char *path, train_config *c, mskx_err *e) {
  train_config_default(c);
  cJSON *o = cJSON_Parse(text);
  if (!o || !cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return err_set(e, MSKX_EFORMAT, "%s: not a JSON object", path);
  }
  const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(o, "format");
  int rc = cJSON_IsString(fmt) && !strcmp(fmt->valuestring, CONFIG_FORMAT)
               ? opt_from_json(train_options, train_options_count, o, path, c, e)
               : err_set(e, MSKX_EFORMAT, "%s: not an mskx training configuration", path);
  cJSON_Delete(o);
  return rc;
}

uint64_t train_config_fingerprint(const train_config *c) {
  return opt_fingerprint(train_options, train_options_count, c, FNV1A_INIT);
}
