/* mskx synth: writes a synthetic MURA-format dataset of radiograph phantoms. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include "cli/cli.h"
#include "data/synth.h"

static void usage(void) {
  printf(
      "usage: mskx synth --out DIR [options]\n\n"
      "Writes DIR/MURA-v1.1/ in the layout of the MURA v1.1 release (train/ and valid/\n"
      "folders XR_<PART>/patient<NNNNN>/study<K>_<positive|negative>/image<N>.png and the\n"
      "four CSVs) filled with procedural radiograph phantoms of the seven MURA parts, plus\n"
      "DIR/synth_findings.csv (finding type and box per image). The images are synthetic\n"
      "phantoms for demos and tests: they carry no clinical meaning.\n\n"
      "options:\n"
      "  -o, --out DIR              output folder (required)\n"
      "  -n, --studies N            studies over both splits, %d..%d (default 700)\n"
      "  -s, --seed S               random seed (default 1); same arguments, same bytes\n"
      "      --min-size PX          smallest image width/height, %d..%d (default 200)\n"
      "      --max-size PX          largest image width/height, %d..%d (default 512)\n"
      "      --valid-fraction F     share of studies in valid, whole patients (default 0.15)\n"
      "      --abnormal-fraction F  share of abnormal studies per split (default 0.4)\n"
      "      --finding-scale K      findings K times larger and stronger, 1..4 (default 1;\n"
      "                             larger is easier to learn, e.g. for a short demo)\n"
      "  -j, --threads T            worker threads (default: all cores); output is the same\n"
      "  -f, --force                write into a non-empty DIR/MURA-v1.1\n"
      "  -h, --help                 this text\n",
      SYNTH_MIN_STUDIES, SYNTH_MAX_STUDIES, SYNTH_MIN_SIZE, SYNTH_MAX_SIZE, SYNTH_MIN_SIZE, SYNTH_MAX_SIZE);
}

static void print_summary(const synth_config *c, const synth_summary *s) {
  int studies = s->studies[0] + s->studies[1], images = s->images[0] + s->images[1];
  int abnormal = s->abnormal[0] + s->abnormal[1];
  printf("Wrote %s/MURA-v1.1: train %d studies (%d abnormal) / %d images / %d patients, "
         "valid %d studies (%d abnormal) / %d images / %d patients; abnormal share %.1f%% "
         "(fracture %d, hardware %d, lesion %d studies), finding drawn on %d of %d abnormal images, "
         "%d RGB images; %.1f s (%.0f images/s). These are synthetic phantoms, not clinical data.\n",
         c->out_dir, s->studies[0], s->abnormal[0], s->images[0], s->patients[0], s->studies[1], s->abnormal[1],
         s->images[1], s->patients[1], studies ? 100.0 * abnormal / studies : 0.0,
         s->finding_studies[SYNTH_FINDING_FRACTURE], s->finding_studies[SYNTH_FINDING_HARDWARE],
         s->finding_studies[SYNTH_FINDING_LESION], s->finding_images, s->abnormal_images, s->rgb_images,
         s->seconds, s->seconds > 0 ? images / s->seconds : 0.0);
}

int cmd_synth(int argc, char **argv) {
  const char *cmd = "synth";
  enum { OPT_MIN = 256, OPT_MAX, OPT_VALID, OPT_ABN, OPT_SCALE };
  static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                       {"studies", required_argument, 0, 'n'},
                                       {"seed", required_argument, 0, 's'},
                                       {"min-size", required_argument, 0, OPT_MIN},
                                       {"max-size", required_argument, 0, OPT_MAX},
                                       {"valid-fraction", required_argument, 0, OPT_VALID},
                                       {"abnormal-fraction", required_argument, 0, OPT_ABN},
                                       {"finding-scale", required_argument, 0, OPT_SCALE},
                                       {"threads", required_argument, 0, 'j'},
                                       {"force", no_argument, 0, 'f'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  synth_config cfg;
  synth_config_default(&cfg);
  long v;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "o:n:s:j:fh", opts, NULL)) != -1) {
    switch (c) {
      case 'o': cfg.out_dir = optarg; break;
      case 'n':
        if (cli_parse_int(cmd, "studies", optarg, INT_MIN, INT_MAX, &v)) return 2;
        cfg.studies = (int)v;
        break;
      case 's':
        if (cli_parse_int(cmd, "seed", optarg, 0, LONG_MAX, &v)) return 2;
        cfg.seed = (uint64_t)v;
        break;
      case OPT_MIN:
        if (cli_parse_int(cmd, "min-size", optarg, INT_MIN, INT_MAX, &v)) return 2;
        cfg.min_size = (int)v;
        break;
      case OPT_MAX:
        if (cli_parse_int(cmd, "max-size", optarg, INT_MIN, INT_MAX, &v)) return 2;
        cfg.max_size = (int)v;
        break;
      case OPT_VALID:
        if (cli_parse_double(cmd, "valid-fraction", optarg, 0.01, 0.99, &cfg.valid_fraction)) return 2;
        break;
      case OPT_ABN:
        if (cli_parse_double(cmd, "abnormal-fraction", optarg, 0.0, 1.0, &cfg.abnormal_fraction)) return 2;
        break;
      case OPT_SCALE:
        if (cli_parse_double(cmd, "finding-scale", optarg, 1.0, 4.0, &cfg.finding_scale)) return 2;
        break;
      case 'j':
        if (cli_parse_int(cmd, "threads", optarg, 1, 1024, &v)) return 2;
        cfg.threads = (int)v;
        break;
      case 'f': cfg.force = 1; break;
      case 'h': usage(); return 0;
      default: return cli_usage_error(cmd);
    }
  }
  if (optind < argc) return cli_usage_errorf(cmd, "unexpected argument '%s' (see 'mskx synth --help')", argv[optind]);
  if (!cfg.out_dir) return cli_usage_errorf(cmd, "--out DIR is required (see 'mskx synth --help')");
  /* Ranges are checked by synth_config_check, whose messages say why. */
  mskx_err e = {0};
  synth_summary sum;
  if (synth_generate(&cfg, &sum, &e)) return cli_error(cmd, &e);
  print_summary(&cfg, &sum);
  return 0;
}
