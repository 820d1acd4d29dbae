/* Abnormal findings drawn into a phantom: fractures (lucent line, often with
 * displaced and angulated fragments), orthopaedic hardware (plate and screws,
 * loose screws, nail or wires) and bone lesions (lytic or sclerotic). Sizes,
 * contrast and placement vary widely so some are obvious and some subtle;
 * the study stream fixes the finding, the view stream varies its projection. */
#include "data/synth.h"
#include "data/synth_draw.h"
#include <math.h>
#include <string.h>

#define DEG (3.14159265358979f / 180.0f)
/* Attenuation of metal: saturates the film, as steel and titanium do. */
#define MU_METAL_SOLID 12.0f
#define MU_METAL_FLAT 3.5f

typedef struct site {
  const bone_ref *b;
  float px, py, ux, uy, nx, ny, r;  /* point on the axis, tangent, normal, shaft radius */
  float span;                       /* scene_core_span */
} site;

/* A bone chosen with probability proportional to the area of its eligible
 * stretch, so tiny distal phalanges rarely carry the finding. */
static int pick_site(const scene *sc, rng *r, site *s) {
  float w[SCENE_MAX_BONES], sum = 0.0f;
  for (int i = 0; i < sc->nbones; i++) {
    const bone_ref *b = &sc->bones[i];
    float len = hypotf(b->bx - b->ax, b->by - b->ay);
    w[i] = (b->tmax - b->tmin) * len * (b->ra + b->rb);
    sum += w[i];
  }
  if (sc->nbones == 0 || sum <= 0.0f) return 0;
  float u = unif(r, 0.0f, sum);
  int k = 0;
  while (k < sc->nbones - 1 && u >= w[k]) u -= w[k++];
  s->b = &sc->bones[k];
  bone_point(s->b, unif(r, s->b->tmin, s->b->tmax), &s->px, &s->py, &s->ux, &s->uy, &s->r);
  s->nx = -s->uy;
  s->ny = s->ux;
  s->span = scene_core_span(sc);
  return 1;
}

static void rotate(float ux, float uy, float deg, float *ox, float *oy) {
  float c = cosf(deg * DEG), s = sinf(deg * DEG);
  *ox = c * ux - s * uy;
  *oy = s * ux + c * uy;
}

static float fracture(scene *sc, const site *s, rng *r, rng *vr) {
  float sub = unif(r, 0.0f, 1.0f);
  float phi = unif(r, 55.0f, 90.0f) * (rng_uniform(r) < 0.5 ? -1.0f : 1.0f);
  /* Floors relative to the whole view keep thin long bones' fractures a
   * pixel or more wide at 128 px input. */
  float k = sc->fscale;
  float gap = k * fmaxf(unif(r, 0.12f, 0.32f) * s->r, 0.004f * s->span);
  float shift = k * fmaxf(unif(r, 0.25f, 0.8f) * s->r, 0.012f * s->span) * (rng_uniform(r) < 0.5 ? -1.0f : 1.0f);
  float along = unif(r, -0.15f, 0.25f) * s->r, angul = unif(r, -15.0f, 15.0f);
  float strength = fminf(1.0f, unif(r, 0.6f, 1.0f) * sqrtf(k)), reach = unif(r, -0.2f, 0.5f);
  /* The projection changes the line's apparent angle and the displacement. */
  phi += unif(vr, -8.0f, 8.0f);
  float fv = unif(vr, 0.3f, 1.0f);
  float dx, dy, lnx, lny;
  rotate(s->ux, s->uy, phi, &dx, &dy);   /* along the fracture line */
  rotate(dx, dy, -90.0f, &lnx, &lny);    /* its normal */
  if (lnx * s->ux + lny * s->uy < 0.0f) lnx = -lnx, lny = -lny;  /* towards the bone's b end */
  if (sub < 0.5f) {
    /* Displaced: two clipped fragments with a gap; the distal one moves. */
    object *a = &sc->o[s->b->obj];
    object *b = obj_new(sc, LAYER_BONE, PROFILE_SOLID, 0, 0, 0);
    if (!b) return s->r;
    *b = *a;
    a->clip = b->clip = 1;
    a->clip_px = s->px - lnx * gap, a->clip_py = s->py - lny * gap, a->clip_nx = -lnx, a->clip_ny = -lny;
    b->clip_px = s->px + lnx * gap, b->clip_py = s->py + lny * gap, b->clip_nx = lnx, b->clip_ny = lny;
    obj_move(b, s->px, s->py, angul * fv * DEG, (s->nx * shift + s->ux * along) * fv,
             (s->ny * shift + s->uy * along) * fv);
    return 2.1f * s->r + fabsf(shift);
  }
  object *l = obj_new(sc, LAYER_LUCENT, PROFILE_FLAT, strength, 0.0f, 0);
  if (!l) return s->r;
  l->feather = 0.3f * gap;
  float e0 = 1.6f * s->r, e1 = -1.6f * s->r;
  if (sub >= 0.8f) e1 = -reach * s->r;  /* incomplete: from one cortex part way across */
  obj_capsule(l, s->px + dx * e0, s->py + dy * e0, s->px + dx * e1, s->py + dy * e1, gap, gap, 0.0f);
  return 2.1f * s->r;
}

/* A screw from (x, y) along (dx, dy) for len cm, with a head at the start. */
static void screw(scene *sc, float x, float y, float dx, float dy, float len, float rad) {
  object *o = obj_new(sc, LAYER_METAL, PROFILE_SOLID, MU_METAL_SOLID, 0.0f, 0);
  obj_capsule(o, x, y, x + dx * len, y + dy * len, rad, 0.8f * rad, 0.0f);
  obj_ellipse(o, x, y, 1.7f * rad, 1.7f * rad, 0.0f, 1.2f * rad, 0.0f);
}

static float hardware(scene *sc, const site *s, rng *r, rng *vr, float *cx, float *cy) {
  float sub = unif(r, 0.0f, 1.0f), R = s->r;
  if (sub < 0.5f) {
    float L = unif(r, 5.0f, 10.0f) * R, pw = unif(r, 0.25f, 0.4f) * R, srad = unif(r, 0.16f, 0.22f) * R;
    int ns = (int)lroundf(L / (1.4f * R));
    ns = ns < 2 ? 2 : ns > 7 ? 7 : ns;
    /* Beside the bone in one projection, over it in another. */
    float off = unif(vr, -1.0f, 1.0f) * (R + pw), side = off < 0.0f ? -1.0f : 1.0f;
    object *p = obj_new(sc, LAYER_METAL, PROFILE_FLAT, MU_METAL_FLAT, 0.0f, 0);
    if (!p) return R;
    p->feather = 0.1f * pw;
    float cx = s->px + s->nx * off, cy = s->py + s->ny * off, h = 0.5f * L;
    obj_capsule(p, cx - s->ux * h, cy - s->uy * h, cx + s->ux * h, cy + s->uy * h, pw, pw, 0.0f);
    float len = fmaxf(0.15f * R, fabsf(off) / (R + pw) * 2.1f * R);
    for (int i = 0; i < ns; i++) {
      float t = ((float)i + 0.5f) / (float)ns * L - h;
      screw(sc, cx + s->ux * t, cy + s->uy * t, -s->nx * side, -s->ny * side, len, srad);
    }
    return h + R;
  }
  if (sub < 0.8f) {
    int ns = 1 + (int)rng_below(r, 3);
    float srad = unif(r, 0.18f, 0.26f) * R;
    for (int i = 0; i < ns; i++) {
      float t = ((float)i - 0.5f * (float)(ns - 1)) * 1.3f * R, dx, dy;
      rotate(s->nx, s->ny, unif(r, -35.0f, 35.0f), &dx, &dy);
      float x = s->px + s->ux * t - dx * 1.15f * R, y = s->py + s->uy * t - dy * 1.15f * R;
      screw(sc, x, y, dx, dy, 2.3f * R, srad);
    }
    return 1.5f * R + (float)ns * R;
  }
  object *m = obj_new(sc, LAYER_METAL, PROFILE_SOLID, MU_METAL_SOLID, 0.0f, 0);
  if (!m) return R;
  if (sc->ref >= 0.55f) {
    /* Intramedullary nail along the shaft with a locking screw at each end. */
    float x0, y0, x1, y1, ux, uy, r0;
    bone_point(s->b, fmaxf(0.0f, s->b->tmin - 0.05f), &x0, &y0, &ux, &uy, &r0);
    bone_point(s->b, fminf(1.0f, s->b->tmax + 0.05f), &x1, &y1, &ux, &uy, &r0);
    obj_capsule(m, x0, y0, x1, y1, 0.28f * R, 0.28f * R, 0.0f);
    screw(sc, x0 - s->nx * 1.1f * R, y0 - s->ny * 1.1f * R, s->nx, s->ny, 2.2f * R, 0.14f * R);
    screw(sc, x1 - s->nx * 1.1f * R, y1 - s->ny * 1.1f * R, s->nx, s->ny, 2.2f * R, 0.14f * R);
    *cx = 0.5f * (x0 + x1);
    *cy = 0.5f * (y0 + y1);
    return 0.5f * hypotf(x1 - x0, y1 - y0) + 1.2f * R;
  }
  /* Kirschner wires crossing the bone obliquely. */
  int nw = 1 + (int)rng_below(r, 2);
  for (int i = 0; i < nw; i++) {
    float dx, dy, a = unif(r, 15.0f, 40.0f) * (i ? -1.0f : 1.0f);
    rotate(s->ux, s->uy, a, &dx, &dy);
    float h = 2.3f * R, rad = unif(r, 0.1f, 0.14f) * R;
    obj_capsule(m, s->px - dx * h, s->py - dy * h, s->px + dx * h, s->py + dy * h, rad, rad, 0.0f);
  }
  return 2.5f * R;
}

static float lesion(scene *sc, const site *s, rng *r, rng *vr, float *cx, float *cy) {
  float R = s->r, ang = atan2f(s->uy, s->ux) / DEG, off = unif(r, -0.35f, 0.35f) * R, k = sc->fscale;
  *cx = s->px + s->nx * off;
  *cy = s->py + s->ny * off;
  if (rng_uniform(r) < 0.6) {
    /* Lytic lesions may stretch along the shaft; the lucency only acts on bone. */
    float sa = k * fmaxf(unif(r, 0.5f, 1.3f) * R, unif(r, 0.02f, 0.045f) * s->span),
          sb = fminf(k * unif(r, 0.4f, 0.9f), 1.0f) * R;
    float strength = fminf(1.0f, unif(r, 0.35f, 0.85f) * unif(vr, 0.85f, 1.1f) * sqrtf(k));
    int rim = rng_uniform(r) < 0.35;
    object *l = obj_new(sc, LAYER_LUCENT, PROFILE_FLAT, strength, 0.0f, 0);
    if (!l) return R;
    l->feather = 0.35f * sb;
    obj_ellipse(l, *cx, *cy, sa, sb, ang, sb, 0.0f);
    if (rim) {
      /* A thin sclerotic margin: an ellipsoidal shell of extra density. */
      object *o = obj_new(sc, LAYER_BONE, PROFILE_SOLID, 0.5f * sc->mu_cortex, -0.5f * sc->mu_cortex, 0);
      obj_ellipse(o, *cx, *cy, 1.2f * sa, 1.2f * sb, ang, sb, 0.82f);
    }
    return 1.25f * fmaxf(sa, sb);
  }
  float sa = k * fmaxf(unif(r, 0.35f, 0.9f) * R, unif(r, 0.015f, 0.03f) * s->span),
        sb = fminf(k * unif(r, 0.3f, 0.8f), 1.2f) * R;
  object *o = obj_new(sc, LAYER_BONE, PROFILE_SOLID, unif(r, 0.5f, 1.1f) * sqrtf(k) * sc->mu_cortex, 0.0f, 0);
  obj_ellipse(o, *cx, *cy, sa, sb, ang, sb * unif(r, 0.8f, 1.5f), 0.0f);
  return 1.1f * fmaxf(sa, sb);
}

void add_finding(scene *sc, int finding, rng *r, rng *vr, float *cx, float *cy, float *radius) {
  site s;
  *cx = *cy = *radius = 0.0f;
  if (finding == SYNTH_FINDING_NONE || !pick_site(sc, r, &s)) return;
  *cx = s.px;
  *cy = s.py;
  if (finding == SYNTH_FINDING_FRACTURE) *radius = fracture(sc, &s, r, vr);
  else if (finding == SYNTH_FINDING_HARDWARE) *radius = hardware(sc, &s, r, vr, cx, cy);
  else *radius = lesion(sc, &s, r, vr, cx, cy);
}
