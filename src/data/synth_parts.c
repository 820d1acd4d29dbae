/* Phantom anatomy of the seven MURA parts, in centimetres with the limb's long
 * axis along +y (distal up for hand parts). Proportions are rough textbook
 * values; each study varies bone girth, soft tissue, finger spread and joint
 * angles. Bones that may carry a finding are registered with the stretch of
 * their axis where a finding is plausible. */
#include "data/synth.h"
#include "data/synth_draw.h"
#include <math.h>
#include <string.h>

#define DEG (3.14159265358979f / 180.0f)

typedef struct sizes {
  float rf;  /* bone girth factor */
  float tf;  /* soft-tissue factor */
} sizes;

/* Rotates everything added since (first_obj, first_bone) about (ox, oy): a
 * joint angle applied to the distal segment. */
static void move_since(scene *sc, int first_obj, int first_bone, float ox, float oy, float ang_deg) {
  float a = ang_deg * DEG, c = cosf(a), s = sinf(a);
  for (int i = first_obj; i < sc->nobj; i++) obj_move(&sc->o[i], ox, oy, a, 0.0f, 0.0f);
  for (int i = first_bone; i < sc->nbones; i++) {
    bone_ref *b = &sc->bones[i];
    float *p[3][2] = {{&b->ax, &b->ay}, {&b->mx, &b->my}, {&b->bx, &b->by}};
    for (int k = 0; k < 3; k++) {
      float x = *p[k][0] - ox, y = *p[k][1] - oy;
      *p[k][0] = ox + c * x - s * y;
      *p[k][1] = oy + s * x + c * y;
    }
  }
}

/* An invisible region that frames the view, for anatomy whose bones run out
 * of the field (their cut ends must not show). */
static void frame_hint(scene *sc, float ax, float ay, float bx, float by, float r) {
  object *o = obj_new(sc, LAYER_SOFT, PROFILE_SOLID, 0.0f, 0.0f, 1);
  obj_capsule(o, ax, ay, bx, by, r, r, 0.0f);
}

static object *soft_obj(scene *sc) { return obj_new(sc, LAYER_SOFT, PROFILE_SOLID, sc->mu_soft, 0.0f, 0); }

static void bone_ellipse(scene *sc, float cx, float cy, float sa, float sb, float ang, float k, int core) {
  object *o = obj_new(sc, LAYER_BONE, PROFILE_SOLID, sc->mu_cortex, sc->mu_medulla - sc->mu_cortex, core);
  obj_ellipse(o, cx, cy, sa, sb, ang, 0.45f * (sa + sb), k);
}

/* A chain of bones along a ray (metacarpal and phalanges), bending by `flex`
 * degrees at each joint, with a soft-tissue sleeve over bones [sleeve_from, n). */
typedef struct digit {
  float x, y, ang;
  int n;
  float len[4], rad[4];
  int cut_base;        /* first bone starts outside the field: no base blob */
  int cut_tip;         /* last bone leaves the field: no head */
  float flex, tissue;
  int sleeve_from;
  int eligible_from;   /* bones [eligible_from, n) may carry findings (n: none) */
  int core_from;       /* bones [core_from, n) frame the view (n: none) */
} digit;

static void add_digit(scene *sc, const digit *d) {
  /* Where findings may sit along metacarpal, proximal, middle, distal bones. */
  static const float tlo[4] = {0.2f, 0.2f, 0.25f, 0.3f}, thi[4] = {0.8f, 0.8f, 0.75f, 0.6f};
  float x = d->x, y = d->y, a = d->ang;
  object *sleeve = d->tissue > 0.0f ? soft_obj(sc) : NULL;
  for (int i = 0; i < d->n; i++) {
    float ux = cosf(a * DEG), uy = sinf(a * DEG), r = d->rad[i];
    int last = i == d->n - 1;
    long_bone b = {x, y, x + ux * d->len[i], y + uy * d->len[i], NULL, r, 0.82f * r,
                   (i == 0 && d->cut_base) ? 0.0f : 1.35f * r, 0.85f * r,
                   last ? 1.2f * r : 1.25f * r, last ? 0.55f * r : 0.8f * r, 0.0f, 0.0f};
    if (last && d->cut_tip) b.wb = b.lb = 0.0f;
    int kind = i + 4 - d->n < 0 ? 0 : i + 4 - d->n;  /* the last bone is a distal phalanx */
    if (i >= d->eligible_from) b.tmin = tlo[kind], b.tmax = thi[kind];
    add_long_bone(sc, &b, i >= d->core_from);
    if (i >= d->sleeve_from && sleeve) {
      float t = d->tissue * (last ? 0.8f : 1.0f), ext = last ? 0.45f : 0.3f;
      obj_capsule(sleeve, x - ux * 0.3f, y - uy * 0.3f, b.bx + ux * ext, b.by + uy * ext, d->tissue, t, 0.0f);
    }
    float gap = 0.1f + 0.35f * r;
    x = b.bx + ux * gap;
    y = b.by + uy * gap;
    a += d->flex;
  }
}

/* The eight carpal bones around (dx, dy); rows: bit 0 proximal, bit 1 distal. */
static void add_carpals(scene *sc, const sizes *z, float dx, float dy, int rows, int core) {
  static const float c[8][5] = {
      {-1.25f, -0.15f, 0.85f, 0.48f, 60.0f}, {-0.10f, -0.45f, 0.60f, 0.52f, 0.0f},
      {0.85f, -0.15f, 0.52f, 0.42f, 20.0f},  {1.25f, -0.35f, 0.36f, 0.33f, 0.0f},
      {-1.85f, 0.80f, 0.55f, 0.48f, 30.0f},  {-1.00f, 1.00f, 0.45f, 0.40f, 10.0f},
      {0.00f, 0.75f, 0.78f, 0.50f, 90.0f},   {1.00f, 0.85f, 0.60f, 0.52f, 80.0f}};
  for (int i = 0; i < 8; i++) {
    if (!(rows & (i < 4 ? 1 : 2))) continue;
    bone_ellipse(sc, dx + c[i][0] * z->rf, dy + c[i][1], c[i][2] * z->rf, c[i][3] * z->rf, c[i][4], 0.8f, core);
  }
}

/* Distal radius and ulna ending at the carpus, coming from out of the field;
 * findings sit in their last `reach` cm, which the caller keeps in view. */
static void add_distal_forearm(scene *sc, const sizes *z, float reach) {
  const float y0 = -24.0f, t0 = 1.0f - reach / 22.75f;
  long_bone rad = {-0.7f, y0, -0.45f, -1.25f, NULL, 0.7f * z->rf, 0.8f * z->rf, 0, 0,
                   1.5f * z->rf, 0.75f * z->rf, t0, 0.95f};
  long_bone uln = {1.4f, y0, 1.2f, -1.35f, NULL, 0.5f * z->rf, 0.48f * z->rf, 0, 0,
                   0.6f * z->rf, 0.5f * z->rf, t0, 0.93f};
  add_long_bone(sc, &rad, 0);
  add_long_bone(sc, &uln, 0);
}

static void hand_rays(scene *sc, rng *r, const sizes *z, int whole) {
  /* base x, y, deviation from the axis (deg), bone lengths, radii */
  static const float ray[5][10] = {
      {-1.95f, 1.05f, 40.0f, 4.4f, 3.0f, 2.3f, 0.0f, 0.48f, 0.42f, 0.34f},
      {-1.20f, 1.55f, 9.0f, 6.6f, 4.0f, 2.4f, 1.8f, 0.42f, 0.38f, 0.32f},
      {-0.10f, 1.65f, 1.0f, 6.4f, 4.4f, 2.8f, 1.9f, 0.43f, 0.39f, 0.33f},
      {0.95f, 1.50f, -7.0f, 5.9f, 4.1f, 2.6f, 1.8f, 0.41f, 0.37f, 0.31f},
      {1.85f, 1.20f, -16.0f, 5.2f, 3.3f, 2.0f, 1.6f, 0.37f, 0.33f, 0.28f}};
  float spread = unif(r, 0.6f, 1.4f), flex = unif(r, -3.0f, 12.0f);
  for (int f = 0; f < 5; f++) {
    const float *q = ray[f];
    digit d = {.x = q[0] * z->rf, .y = q[1], .ang = 90.0f + q[2] * spread, .n = f == 0 ? 3 : 4,
               .flex = flex, .tissue = 0.85f * z->tf, .sleeve_from = 1, .eligible_from = 0, .core_from = 0};
    for (int i = 0; i < 4; i++) d.len[i] = q[3 + i] * unif(r, 0.95f, 1.05f);
    for (int i = 0; i < 3; i++) d.rad[i] = q[7 + i] * z->rf;
    d.rad[3] = d.rad[2] * 0.8f;
    if (f == 0) d.rad[2] = d.rad[1] * 0.85f, d.len[2] = q[5], d.tissue = 1.0f * z->tf;
    if (!whole) {
      /* Wrist films show only the metacarpal bases. */
      d.n = 1;
      d.len[0] *= unif(r, 0.45f, 0.6f);
      d.tissue = 0.0f;
      d.cut_tip = 1;
    }
    add_digit(sc, &d);
  }
}

static void build_hand(scene *sc, rng *r, const sizes *z) {
  add_carpals(sc, z, 0.0f, 0.0f, 3, 1);
  add_distal_forearm(sc, z, 3.0f);
  frame_hint(sc, 0.3f, -4.0f, 0.3f, -1.5f, 1.6f);
  hand_rays(sc, r, z, 1);
  object *s = soft_obj(sc);
  obj_limb(s, 0.3f, -25.0f, 0.2f, 0.5f, 2.6f * z->tf, 2.9f * z->tf, 0.65f);
  obj_ellipse(s, 0.0f, 3.7f, 3.4f * z->tf, 4.0f * z->tf, 0.0f, 1.5f * z->tf, 0.0f);
  obj_limb(s, -1.4f, 1.0f, -4.2f, 4.2f, 1.3f * z->tf, 1.0f * z->tf, 0.65f);
}

static void build_wrist(scene *sc, rng *r, const sizes *z) {
  add_carpals(sc, z, 0.0f, 0.0f, 3, 1);
  add_distal_forearm(sc, z, 6.0f);
  frame_hint(sc, 0.3f, -6.5f, 0.3f, -1.0f, 2.0f);
  hand_rays(sc, r, z, 0);
  object *s = soft_obj(sc);
  obj_limb(s, 0.3f, -25.0f, 0.2f, 1.0f, 2.5f * z->tf, 2.9f * z->tf, 0.65f);
  obj_ellipse(s, 0.0f, 3.5f, 3.5f * z->tf, 3.2f * z->tf, 0.0f, 1.5f * z->tf, 0.0f);
}

static void build_finger(scene *sc, rng *r, const sizes *z) {
  float L = unif(r, 0.85f, 1.1f), flex = unif(r, -4.0f, 14.0f);
  /* The metacarpal runs out of the field: it neither frames the view nor carries findings. */
  digit d = {.x = 0.0f, .y = -12.0f * L, .ang = 90.0f, .n = 4, .len = {12.0f * L, 4.2f * L, 2.6f * L, 1.8f * L},
             .rad = {0.42f * z->rf, 0.39f * z->rf, 0.33f * z->rf, 0.27f * z->rf}, .cut_base = 1, .flex = flex,
             .tissue = 0.95f * z->tf, .sleeve_from = 1, .eligible_from = 1, .core_from = 1};
  add_digit(sc, &d);
  for (int side = -1; side <= 1; side += 2) {
    if (rng_uniform(r) < 0.35) continue;
    digit nb = d;
    float l2 = L * unif(r, 0.82f, 1.0f);
    nb.x = 2.2f * (float)side * z->tf;
    nb.y += unif(r, -0.8f, 0.5f);
    nb.ang = 90.0f - 6.0f * (float)side * unif(r, 0.0f, 1.5f);
    for (int i = 0; i < 4; i++) nb.len[i] *= l2 / L, nb.rad[i] *= 0.95f;
    nb.eligible_from = nb.core_from = 4;
    add_digit(sc, &nb);
  }
  object *s = soft_obj(sc);
  obj_limb(s, 0.0f, -14.0f * L, 0.0f, -1.5f * L, 2.6f * z->tf, 2.4f * z->tf, 0.65f);
}

static void build_forearm(scene *sc, rng *r, const sizes *z) {
  float bow = unif(r, 0.2f, 0.6f);
  float mr[2] = {-1.0f - bow, -0.5f}, mu[2] = {1.15f, 0.0f};
  long_bone rad = {-1.0f, -12.0f, -0.55f, 11.2f, mr, 0.72f * z->rf, 0.5f * z->rf, 1.4f * z->rf, 0.7f * z->rf,
                   0.75f * z->rf, 0.5f * z->rf, 0.12f, 0.88f};
  long_bone uln = {1.05f, -11.7f, 0.85f, 12.6f, mu, 0.45f * z->rf, 0.8f * z->rf, 0.55f * z->rf, 0.5f * z->rf,
                   1.1f * z->rf, 1.4f * z->rf, 0.12f, 0.88f};
  add_long_bone(sc, &rad, 1);
  add_long_bone(sc, &uln, 1);
  add_carpals(sc, z, -0.2f, -13.5f, 1, 0);
  long_bone hum = {0.0f, 32.0f, 0.0f, 13.6f, NULL, 1.0f * z->rf, 1.15f * z->rf, 0, 0, 2.3f * z->rf,
                   1.0f * z->rf, 0, 0};
  add_long_bone(sc, &hum, 0);
  object *s = soft_obj(sc);
  obj_limb(s, 0.0f, -24.0f, 0.0f, 13.5f, 2.3f * z->tf, 3.4f * z->tf, 0.65f);
  obj_limb(s, 0.0f, 13.5f, 0.0f, 32.0f, 3.4f * z->tf, 3.8f * z->tf, 0.65f);
}

static void build_elbow(scene *sc, rng *r, const sizes *z) {
  /* Shafts run out of the field; the view is framed on the joint. */
  long_bone hum = {0.0f, 20.0f, 0.0f, -0.2f, NULL, 1.0f * z->rf, 1.2f * z->rf, 0, 0, 2.3f * z->rf,
                   1.0f * z->rf, 0.7f, 0.92f};
  object *h = add_long_bone(sc, &hum, 0);
  frame_hint(sc, 0.0f, 7.0f, 0.0f, 0.0f, 2.5f);
  obj_ellipse(h, -0.85f * z->rf, -0.15f, 0.62f * z->rf, 0.62f * z->rf, 0.0f, 0.6f * z->rf, 0.86f);
  obj_ellipse(h, 0.75f * z->rf, -0.25f, 0.7f * z->rf, 0.55f * z->rf, 0.0f, 0.6f * z->rf, 0.86f);
  object *s = soft_obj(sc);
  obj_limb(s, 0.0f, 21.0f, 0.0f, 0.0f, 3.6f * z->tf, 3.4f * z->tf, 0.65f);
  int o0 = sc->nobj, b0 = sc->nbones;
  long_bone rad = {-0.9f * z->rf, -0.75f, -1.1f * z->rf, -20.0f, NULL, 0.5f * z->rf, 0.65f * z->rf,
                   0.8f * z->rf, 0.45f * z->rf, 0, 0, 0.06f, 0.3f};
  long_bone uln = {0.75f * z->rf, 1.0f, 0.95f * z->rf, -20.0f, NULL, 0.85f * z->rf, 0.5f * z->rf,
                   1.0f * z->rf, 1.5f * z->rf, 0, 0, 0.1f, 0.33f};
  add_long_bone(sc, &rad, 0);
  object *u = add_long_bone(sc, &uln, 0);
  frame_hint(sc, 0.0f, 0.0f, 0.0f, -7.0f, 2.0f);
  obj_ellipse(u, 0.2f * z->rf, -0.75f, 0.45f * z->rf, 0.35f * z->rf, 30.0f, 0.4f * z->rf, 0.86f);
  s = soft_obj(sc);
  obj_limb(s, 0.0f, 0.0f, 0.0f, -21.0f, 3.3f * z->tf, 2.8f * z->tf, 0.65f);
  /* Flexion at the joint: 0 (extended, AP-like) to 80 degrees (lateral-like). */
  float flex = unif(r, 0.0f, 80.0f) * (rng_uniform(r) < 0.5 ? -1.0f : 1.0f);
  move_since(sc, o0, b0, 0.0f, -0.55f, flex);
}

static void build_humerus(scene *sc, rng *r, const sizes *z) {
  float m[2] = {unif(r, -0.1f, 0.5f), 0.0f};
  long_bone hum = {0.0f, -15.0f, 0.0f, 15.0f, m, 1.0f * z->rf, 1.25f * z->rf, 2.5f * z->rf, 1.05f * z->rf,
                   1.5f * z->rf, 1.4f * z->rf, 0.15f, 0.85f};
  object *h = add_long_bone(sc, &hum, 1);
  obj_ellipse(h, -0.7f * z->rf, 14.0f, 2.2f * z->rf, 2.1f * z->rf, 30.0f, 2.1f * z->rf, 0.87f);
  obj_ellipse(h, 1.3f * z->rf, 13.2f, 0.9f * z->rf, 0.8f * z->rf, 60.0f, 0.8f * z->rf, 0.86f);
  bone_ellipse(sc, -3.6f, 14.0f, 1.9f, 0.55f, 90.0f, 0.7f, 0);
  long_bone acr = {-3.2f, 17.4f, 0.8f, 17.1f, NULL, 0.55f, 0.5f, 0, 0, 0.75f, 0.5f, 0, 0};
  add_long_bone(sc, &acr, 0);
  object *s = soft_obj(sc);
  obj_limb(s, 0.0f, -32.0f, 0.0f, 14.0f, 3.6f * z->tf, 4.2f * z->tf, 0.65f);
  obj_ellipse(s, -0.5f, 14.5f, 5.2f * z->tf, 4.5f * z->tf, 0.0f, 4.0f * z->tf, 0.0f);
}

/* A rib's lateral arc, curving down and out behind the scapula; faint
 * because the beam crosses it obliquely. */
static void add_rib(scene *sc, float y0) {
  static const float deg[5] = {110.0f, 80.0f, 55.0f, 30.0f, 5.0f};
  object *o = obj_new(sc, LAYER_BONE, PROFILE_SOLID, 0.55f * sc->mu_cortex,
                      0.55f * (sc->mu_medulla - sc->mu_cortex), 0);
  float cx = -13.0f, cy = y0 - 6.0f, R = 7.0f;
  for (int i = 0; i < 4; i++) {
    float a0 = deg[i] * DEG, a1 = deg[i + 1] * DEG;
    obj_capsule(o, cx + R * cosf(a0), cy + R * sinf(a0), cx + R * cosf(a1), cy + R * sinf(a1), 0.4f, 0.4f,
                0.6f);
  }
}

static void build_shoulder(scene *sc, rng *r, const sizes *z) {
  static const float scap[12] = {-3.1f, 1.4f, -4.4f, 3.0f, -11.2f, 3.6f, -11.6f, -2.2f, -7.6f, -10.6f, -3.7f, -1.7f};
  for (int i = 0; i < 4; i++) add_rib(sc, 1.0f - 2.6f * (float)i);
  object *sb = obj_new(sc, LAYER_BONE, PROFILE_SOLID, sc->mu_cortex, 0.0f, 0);
  obj_polygon(sb, scap, 6, 0.22f, 0.6f);
  long_bone lat = {-3.5f, -1.5f, -7.6f, -10.2f, NULL, 0.5f, 0.4f, 0, 0, 0, 0, 0, 0};
  long_bone spine = {-3.8f, 2.6f, -11.0f, 3.2f, NULL, 0.45f, 0.4f, 0, 0, 0, 0, 0, 0};
  add_long_bone(sc, &lat, 0);
  add_long_bone(sc, &spine, 0);
  bone_ellipse(sc, -3.0f, 0.3f, 1.8f * z->rf, 0.5f * z->rf, 90.0f, 0.7f, 1);
  bone_ellipse(sc, -3.5f, 1.9f, 0.75f * z->rf, 0.55f * z->rf, 20.0f, 0.8f, 1);
  long_bone acr = {-3.3f, 3.4f, 0.6f, 3.55f, NULL, 0.55f * z->rf, 0.5f * z->rf, 0, 0, 0.75f * z->rf,
                   0.5f * z->rf, 0, 0};
  add_long_bone(sc, &acr, 1);
  float mc[2] = {-5.0f, 5.3f};
  long_bone cla = {0.1f, 4.6f, -10.0f, 4.7f, mc, 0.6f * z->rf, 0.75f * z->rf, 0.8f * z->rf, 0.5f * z->rf, 0, 0,
                   0.25f, 0.75f};
  add_long_bone(sc, &cla, 1);
  object *s = soft_obj(sc);
  obj_ellipse(s, 0.3f, -0.5f, 6.8f * z->tf, 4.8f * z->tf, 90.0f, 4.0f * z->tf, 0.0f);
  obj_ellipse(s, -10.0f, -3.0f, 10.0f, 11.0f, 0.0f, 5.0f, 0.0f);
  obj_limb(s, -6.0f, 6.0f, 0.0f, 4.5f, 2.5f * z->tf, 2.5f * z->tf, 0.65f);
  int o0 = sc->nobj, b0 = sc->nbones;
  long_bone hum = {0.9f, -20.0f, 0.15f, -1.2f, NULL, 1.15f * z->rf, 1.3f * z->rf, 0, 0, 0, 0, 0.65f, 0.95f};
  object *h = add_long_bone(sc, &hum, 0);
  frame_hint(sc, 0.5f, -7.0f, -0.35f, 0.25f, 2.4f);
  obj_limb(soft_obj(sc), 0.3f, -1.0f, 0.9f, -21.0f, 4.6f * z->tf, 4.0f * z->tf, 0.65f);
  obj_ellipse(h, -0.35f, 0.25f, 2.35f * z->rf, 2.2f * z->rf, 25.0f, 2.2f * z->rf, 0.87f);
  obj_ellipse(h, 1.55f, 0.8f, 1.0f * z->rf, 0.8f * z->rf, 60.0f, 0.8f * z->rf, 0.86f);
  /* Abduction and rotation of the arm about the humeral head. */
  move_since(sc, o0, b0, -0.35f, 0.25f, unif(r, -15.0f, 35.0f));
}

void build_anatomy(scene *sc, int part, rng *r) {
  memset(sc, 0, sizeof *sc);
  static const float ref[SYNTH_NPARTS] = {1.0f, 1.0f, 0.42f, 0.8f, 0.55f, 0.6f, 0.42f};
  sizes z = {unif(r, 0.88f, 1.15f), unif(r, 0.85f, 1.2f)};
  sc->ref = ref[part] * z.rf;
  /* Attenuation per reference radius, in the ratios of diagnostic X-rays:
   * cortical bone about 3.5 times water, marrow close to soft tissue. */
  sc->mu_soft = unif(r, 0.09f, 0.11f);
  sc->mu_cortex = unif(r, 0.3f, 0.42f);  /* bone density, osteopenic to dense */
  sc->mu_medulla = unif(r, 0.09f, 0.13f);
  sc->k_shaft = unif(r, 0.5f, 0.66f);
  sc->mirror = rng_uniform(r) < 0.5;
  switch (part) {
    case SYNTH_SHOULDER: build_shoulder(sc, r, &z); break;
    case SYNTH_HUMERUS: build_humerus(sc, r, &z); break;
    case SYNTH_FINGER: build_finger(sc, r, &z); break;
    case SYNTH_ELBOW: build_elbow(sc, r, &z); break;
    case SYNTH_WRIST: build_wrist(sc, r, &z); break;
    case SYNTH_FOREARM: build_forearm(sc, r, &z); break;
    default: build_hand(sc, r, &z); break;
  }
}
