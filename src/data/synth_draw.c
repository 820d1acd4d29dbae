/* Phantom drawing: scene building helpers, the rasteriser (analytic projected
 * thickness of capsules, ellipsoids and slabs, so edges are smooth and
 * tubular bones get the bright cortex / darker medulla of real films without
 * any texture) and the film model (exposure, gamma, marker, blur, noise). */
#include "data/synth_draw.h"
#include <math.h>
#include <string.h>

#define DEG (3.14159265358979f / 180.0f)
/* Width of the soft edge of clipped fragments and flat shapes, in pixels:
 * about one pixel keeps them anti-aliased without blurring the gap away. */
#define EDGE_PX 0.8f

float lerpf(float a, float b, float t) { return a + (b - a) * t; }
float unif(rng *r, float lo, float hi) { return lo + (hi - lo) * (float)rng_uniform(r); }

static float smooth01(float x) {
  if (x <= 0.0f) return 0.0f;
  if (x >= 1.0f) return 1.0f;
  return x * x * (3.0f - 2.0f * x);
}

object *obj_new(scene *sc, int layer, int profile, float mu, float mu_inner, int core) {
  if (sc->nobj >= SCENE_MAX_OBJ) return NULL;
  object *o = &sc->o[sc->nobj++];
  memset(o, 0, sizeof *o);
  o->layer = layer;
  o->profile = profile;
  o->mu = mu;
  o->mu_inner = mu_inner;
  o->core = core;
  return o;
}

static shape *obj_shape(object *o, int kind) {
  if (!o || o->nshapes >= OBJ_MAX_SHAPES) return NULL;
  shape *s = &o->s[o->nshapes++];
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->flat = 1.0f;
  return s;
}

void obj_capsule(object *o, float ax, float ay, float bx, float by, float ra, float rb, float k) {
  shape *s = obj_shape(o, SHAPE_CAPSULE);
  if (!s) return;
  s->ax = ax, s->ay = ay, s->bx = bx, s->by = by, s->ra = ra, s->rb = rb, s->k = k;
}

void obj_limb(object *o, float ax, float ay, float bx, float by, float ra, float rb, float flat) {
  obj_capsule(o, ax, ay, bx, by, ra, rb, 0.0f);
  if (o && o->nshapes) o->s[o->nshapes - 1].flat = flat;
}

void obj_ellipse(object *o, float cx, float cy, float sa, float sb, float ang_deg, float depth, float k) {
  shape *s = obj_shape(o, SHAPE_ELLIPSE);
  if (!s) return;
  s->cx = cx, s->cy = cy, s->sa = sa, s->sb = sb, s->ang = ang_deg * DEG, s->depth = depth, s->k = k;
}

void obj_polygon(object *o, const float *xy, int nv, float depth, float ramp) {
  shape *s = obj_shape(o, SHAPE_POLYGON);
  if (!s) return;
  s->nv = nv > POLY_MAX ? POLY_MAX : nv;
  for (int i = 0; i < s->nv; i++) s->vx[i] = xy[2 * i], s->vy[i] = xy[2 * i + 1];
  s->depth = depth;
  s->ra = ramp;
}

/* End of a long bone: the metaphysis flaring from the shaft radius r, capped
 * by an ellipsoid (epiphysis) whose tip sits at the bone's end. */
static void bone_end(object *o, float ex, float ey, float ux, float uy, float r, float w, float l, float k_end) {
  if (w <= 0.0f || l <= 0.0f) return;
  float f = 3.5f * l;
  obj_capsule(o, ex + ux * f, ey + uy * f, ex + ux * l, ey + uy * l, r, fmaxf(r, 0.85f * w), k_end);
  obj_ellipse(o, ex + ux * l, ey + uy * l, l, w, atan2f(uy, ux) / DEG, 0.5f * (w + l), k_end);
}

object *add_long_bone(scene *sc, const long_bone *b, int core) {
  object *o = obj_new(sc, LAYER_BONE, PROFILE_SOLID, sc->mu_cortex, sc->mu_medulla - sc->mu_cortex, core);
  if (!o) return NULL;
  float mx = b->m ? b->m[0] : 0.5f * (b->ax + b->bx), my = b->m ? b->m[1] : 0.5f * (b->ay + b->by);
  float ux = b->bx - b->ax, uy = b->by - b->ay, len = sqrtf(ux * ux + uy * uy);
  ux /= len, uy /= len;
  float rm = 0.5f * (b->ra + b->rb);
  /* Capsule tips land on a and b; the cortex thins into the cancellous ends. */
  const float k_end = 0.86f;
  if (b->m) {
    float ax = b->ax + ux * b->ra, ay = b->ay + uy * b->ra, bx = b->bx - ux * b->rb, by = b->by - uy * b->rb;
    obj_capsule(o, ax, ay, mx, my, b->ra, rm, sc->k_shaft);
    obj_capsule(o, mx, my, bx, by, rm, b->rb, sc->k_shaft);
  } else {
    obj_capsule(o, b->ax + ux * b->ra, b->ay + uy * b->ra, b->bx - ux * b->rb, b->by - uy * b->rb, b->ra,
                b->rb, sc->k_shaft);
  }
  bone_end(o, b->ax, b->ay, ux, uy, b->ra, b->wa, b->la, k_end);
  bone_end(o, b->bx, b->by, -ux, -uy, b->rb, b->wb, b->lb, k_end);
  if (b->tmax > b->tmin && sc->nbones < SCENE_MAX_BONES) {
    bone_ref *r = &sc->bones[sc->nbones++];
    *r = (bone_ref){(int)(o - sc->o), b->ax, b->ay, mx, my, b->bx, b->by, b->ra, b->rb, b->tmin, b->tmax};
  }
  return o;
}

void bone_point(const bone_ref *b, float t, float *px, float *py, float *ux, float *uy, float *r) {
  float x0, y0, x1, y1, s;
  if (t < 0.5f) x0 = b->ax, y0 = b->ay, x1 = b->mx, y1 = b->my, s = 2.0f * t;
  else x0 = b->mx, y0 = b->my, x1 = b->bx, y1 = b->by, s = 2.0f * t - 1.0f;
  *px = lerpf(x0, x1, s);
  *py = lerpf(y0, y1, s);
  float dx = x1 - x0, dy = y1 - y0, len = sqrtf(dx * dx + dy * dy);
  *ux = dx / len;
  *uy = dy / len;
  *r = lerpf(b->ra, b->rb, t);
}

static void rot_about(float *x, float *y, float ox, float oy, float c, float s, float dx, float dy) {
  float rx = *x - ox, ry = *y - oy;
  *x = ox + c * rx - s * ry + dx;
  *y = oy + s * rx + c * ry + dy;
}

void obj_move(object *o, float ox, float oy, float ang, float dx, float dy) {
  float c = cosf(ang), s = sinf(ang);
  for (int i = 0; i < o->nshapes; i++) {
    shape *sh = &o->s[i];
    rot_about(&sh->ax, &sh->ay, ox, oy, c, s, dx, dy);
    rot_about(&sh->bx, &sh->by, ox, oy, c, s, dx, dy);
    rot_about(&sh->cx, &sh->cy, ox, oy, c, s, dx, dy);
    for (int v = 0; v < sh->nv; v++) rot_about(&sh->vx[v], &sh->vy[v], ox, oy, c, s, dx, dy);
    sh->ang += ang;
  }
  if (o->clip) {
    rot_about(&o->clip_px, &o->clip_py, ox, oy, c, s, dx, dy);
    float nx = o->clip_nx, ny = o->clip_ny;
    o->clip_nx = c * nx - s * ny;
    o->clip_ny = s * nx + c * ny;
  }
}

/* ---- pose ---- */

void xform_point(const xform *xf, float x, float y, float *ox, float *oy) {
  float u = xf->sx * x;
  *ox = xf->m00 * u + xf->m01 * y + xf->tx;
  *oy = xf->m10 * u + xf->m11 * y + xf->ty;
}

/* Linear part applied to a direction (no translation). */
static void xform_dir(const xform *xf, float x, float y, float *ox, float *oy) {
  float u = xf->sx * x;
  *ox = xf->m00 * u + xf->m01 * y;
  *oy = xf->m10 * u + xf->m11 * y;
}

static void grow(float *bb, float x, float y, float r) {
  if (x - r < bb[0]) bb[0] = x - r;
  if (y - r < bb[1]) bb[1] = y - r;
  if (x + r > bb[2]) bb[2] = x + r;
  if (y + r > bb[3]) bb[3] = y + r;
}

/* Half extents of an ellipse with semi-axes a, b at angle ang. */
static void ellipse_extent(float a, float b, float ang, float *hx, float *hy) {
  float c = cosf(ang), s = sinf(ang);
  *hx = sqrtf(a * a * c * c + b * b * s * s);
  *hy = sqrtf(a * a * s * s + b * b * c * c);
}

/* Maps a shape into pixel space. Radii scale isotropically; ellipse axes
 * follow the squash so that lateral-like views narrow the whole anatomy. */
static void shape_to_px(const xform *xf, const shape *in, shape *o) {
  *o = *in;
  xform_point(xf, in->ax, in->ay, &o->ax, &o->ay);
  xform_point(xf, in->bx, in->by, &o->bx, &o->by);
  xform_point(xf, in->cx, in->cy, &o->cx, &o->cy);
  o->ra = in->ra * xf->s;
  o->rb = in->rb * xf->s;
  o->depth = in->depth * xf->s;
  for (int v = 0; v < in->nv; v++) xform_point(xf, in->vx[v], in->vy[v], &o->vx[v], &o->vy[v]);
  if (in->kind == SHAPE_ELLIPSE) {
    float c = cosf(in->ang), s = sinf(in->ang), dx, dy, px, py;
    xform_dir(xf, c, s, &dx, &dy);
    xform_dir(xf, -s, c, &px, &py);
    o->ang = atan2f(dy, dx);
    o->cos_ang = cosf(o->ang);
    o->sin_ang = sinf(o->ang);
    o->sa = in->sa * sqrtf(dx * dx + dy * dy);
    o->sb = in->sb * sqrtf(px * px + py * py);
  }
}

static void shape_bbox(const shape *s, float *bb) {
  if (s->kind == SHAPE_CAPSULE) {
    float r = s->ra > s->rb ? s->ra : s->rb;
    grow(bb, s->ax, s->ay, r);
    grow(bb, s->bx, s->by, r);
  } else if (s->kind == SHAPE_ELLIPSE) {
    float hx, hy;
    ellipse_extent(s->sa, s->sb, s->ang, &hx, &hy);
    grow(bb, s->cx - hx, s->cy - hy, 0.0f);
    grow(bb, s->cx + hx, s->cy + hy, 0.0f);
  } else {
    for (int v = 0; v < s->nv; v++) grow(bb, s->vx[v], s->vy[v], 0.0f);
  }
}

float scene_core_span(const scene *sc) {
  xform unit = {1.0f, 0.0f, 0.0f, 1.0f, 0.0f, 0.0f, 1.0f, 1.0f};
  float bb[4] = {1e30f, 1e30f, -1e30f, -1e30f};
  for (int i = 0; i < sc->nobj; i++)
    for (int j = 0; sc->o[i].core && j < sc->o[i].nshapes; j++) {
      shape px;
      shape_to_px(&unit, &sc->o[i].s[j], &px);
      shape_bbox(&px, bb);
    }
  return bb[2] > bb[0] ? fmaxf(bb[2] - bb[0], bb[3] - bb[1]) : 0.0f;
}

void fit_pose(const scene *sc, int w, int h, float theta, float squash, float fill, float ox, float oy,
              xform *xf, float *core_px) {
  float c = cosf(theta), s = sinf(theta);
  xform unit = {c, -s, s, c, 0.0f, 0.0f, 1.0f, squash * (sc->mirror ? -1.0f : 1.0f)};
  float bb[4] = {1e30f, 1e30f, -1e30f, -1e30f};
  for (int i = 0; i < sc->nobj; i++) {
    if (!sc->o[i].core) continue;
    for (int j = 0; j < sc->o[i].nshapes; j++) {
      shape px;
      shape_to_px(&unit, &sc->o[i].s[j], &px);
      shape_bbox(&px, bb);
    }
  }
  float bw = bb[2] - bb[0], bh = bb[3] - bb[1];
  if (bw < 1e-3f) bw = 1e-3f;
  if (bh < 1e-3f) bh = 1e-3f;
  float k = fill * fminf((float)w / bw, (float)h / bh);
  *xf = unit;
  xf->m00 *= k, xf->m01 *= k, xf->m10 *= k, xf->m11 *= k;
  xf->s = k;
  float slack_x = (float)w - k * bw, slack_y = (float)h - k * bh;
  xf->tx = 0.5f * (float)w - k * 0.5f * (bb[0] + bb[2]) + ox * slack_x;
  xf->ty = 0.5f * (float)h - k * 0.5f * (bb[1] + bb[3]) + oy * slack_y;
  core_px[0] = k * bb[0] + xf->tx;
  core_px[1] = k * bb[1] + xf->ty;
  core_px[2] = k * bb[2] + xf->tx;
  core_px[3] = k * bb[3] + xf->ty;
}

/* ---- rasteriser ---- */

/* Outer and inner projected thickness (pixels) or edge coverage of a shape at (x, y). */
static void shape_eval(const shape *s, int flat, float feather, float x, float y, float *out, float *in) {
  *out = *in = 0.0f;
  if (s->kind == SHAPE_CAPSULE) {
    float vx = s->bx - s->ax, vy = s->by - s->ay, l2 = vx * vx + vy * vy;
    float px = x - s->ax, py = y - s->ay;
    float t = l2 > 0.0f ? (px * vx + py * vy) / l2 : 0.0f;
    t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
    float dx = px - t * vx, dy = py - t * vy, d2 = dx * dx + dy * dy;
    float r = s->ra + t * (s->rb - s->ra);
    if (flat) {
      *out = smooth01((r - sqrtf(d2)) / feather + 0.5f);
      return;
    }
    if (d2 < r * r) *out = 2.0f * s->flat * sqrtf(r * r - d2);
    float ri = s->k * r;
    if (d2 < ri * ri) *in = 2.0f * s->flat * sqrtf(ri * ri - d2);
  } else if (s->kind == SHAPE_ELLIPSE) {
    float c = s->cos_ang, sn = s->sin_ang, px = x - s->cx, py = y - s->cy;
    float u = (c * px + sn * py) / s->sa, v = (-sn * px + c * py) / s->sb, q = u * u + v * v;
    if (flat) {
      float m = s->sa < s->sb ? s->sa : s->sb;
      *out = smooth01((1.0f - sqrtf(q)) * m / feather + 0.5f);
      return;
    }
    if (q < 1.0f) *out = 2.0f * s->depth * sqrtf(1.0f - q);
    float k2 = s->k * s->k;
    if (q < k2) *in = 2.0f * s->depth * s->k * sqrtf(1.0f - q / k2);
  } else {
    int inside = 0;
    float dmin = 1e30f;
    for (int i = 0, j = s->nv - 1; i < s->nv; j = i++) {
      float xi = s->vx[i], yi = s->vy[i], xj = s->vx[j], yj = s->vy[j];
      if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
      float ex = xj - xi, ey = yj - yi, l2 = ex * ex + ey * ey;
      float t = l2 > 0.0f ? ((x - xi) * ex + (y - yi) * ey) / l2 : 0.0f;
      t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
      float dx = x - xi - t * ex, dy = y - yi - t * ey, d2 = dx * dx + dy * dy;
      if (d2 < dmin) dmin = d2;
    }
    float d = sqrtf(dmin) * (inside ? 1.0f : -1.0f);
    if (flat) *out = smooth01(d / feather + 0.5f);
    else if (d > 0.0f) *out = 2.0f * s->depth * fminf(1.0f, d / s->ra);
  }
}

static void render_object(const object *obj, const xform *xf, float inv_ref, int w, int h, float *dst) {
  shape sh[OBJ_MAX_SHAPES];
  float bb[4] = {1e30f, 1e30f, -1e30f, -1e30f};
  if (obj->mu == 0.0f && obj->mu_inner == 0.0f) return;  /* a framing hint */
  for (int i = 0; i < obj->nshapes; i++) {
    shape_to_px(xf, &obj->s[i], &sh[i]);
    shape_bbox(&sh[i], bb);
  }
  if (obj->nshapes == 0) return;
  int flat = obj->profile == PROFILE_FLAT;
  float feather = fmaxf(EDGE_PX, obj->feather * xf->s);
  int x0 = (int)floorf(bb[0] - feather - 1.0f), y0 = (int)floorf(bb[1] - feather - 1.0f);
  int x1 = (int)ceilf(bb[2] + feather + 1.0f), y1 = (int)ceilf(bb[3] + feather + 1.0f);
  if (x0 < 0) x0 = 0;
  if (y0 < 0) y0 = 0;
  if (x1 > w) x1 = w;
  if (y1 > h) y1 = h;
  float cpx = 0, cpy = 0, cnx = 0, cny = 0;
  if (obj->clip) {
    float dx, dy, nx, ny;
    xform_point(xf, obj->clip_px, obj->clip_py, &cpx, &cpy);
    /* The clip line's direction maps linearly; its normal is re-derived from
     * it and oriented like the mapped canonical normal. */
    xform_dir(xf, -obj->clip_ny, obj->clip_nx, &dx, &dy);
    xform_dir(xf, obj->clip_nx, obj->clip_ny, &nx, &ny);
    float l = sqrtf(dx * dx + dy * dy);
    cnx = -dy / l, cny = dx / l;
    if (cnx * nx + cny * ny < 0.0f) cnx = -cnx, cny = -cny;
  }
  float ko = flat ? obj->mu : obj->mu * inv_ref, ki = obj->mu_inner * inv_ref;
  for (int y = y0; y < y1; y++) {
    float fy = (float)y + 0.5f;
    float *row = dst + (size_t)y * (size_t)w;
    for (int x = x0; x < x1; x++) {
      float fx = (float)x + 0.5f, out = 0.0f, in = 0.0f;
      for (int i = 0; i < obj->nshapes; i++) {
        float o, n;
        shape_eval(&sh[i], flat, feather, fx, fy, &o, &n);
        if (o > out) out = o;
        if (n > in) in = n;
      }
      if (out <= 0.0f) continue;
      float v = ko * out + (flat ? 0.0f : ki * in);
      if (obj->clip) v *= smooth01(((fx - cpx) * cnx + (fy - cpy) * cny) / EDGE_PX + 0.5f);
      if (obj->layer == LAYER_SOFT) row[x] = fmaxf(row[x], v);
      else row[x] += v;
    }
  }
}

void render_scene(const scene *sc, const xform *xf, int w, int h, float *soft, float *bone, float *lucent) {
  float inv_ref = 1.0f / (xf->s * sc->ref);
  /* Soft tissue first: metal adds on top of the max-combined envelope. */
  for (int i = 0; i < sc->nobj; i++)
    if (sc->o[i].layer == LAYER_SOFT) render_object(&sc->o[i], xf, inv_ref, w, h, soft);
  for (int i = 0; i < sc->nobj; i++) {
    const object *o = &sc->o[i];
    if (o->layer == LAYER_METAL) render_object(o, xf, inv_ref, w, h, soft);
    else if (o->layer == LAYER_BONE) render_object(o, xf, inv_ref, w, h, bone);
    else if (o->layer == LAYER_LUCENT) render_object(o, xf, inv_ref, w, h, lucent);
  }
}

/* ---- film ---- */

/* 5x7 glyphs of the lead side markers, rows top to bottom, bit 4 = left. */
static const uint8_t glyph_l[7] = {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f};
static const uint8_t glyph_r[7] = {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11};

static void draw_marker(float *img, int w, int h, const film *fm, int left) {
  int ms = (int)(fm->marker_size * (float)(w < h ? w : h));
  int cell = ms / 7 > 1 ? ms / 7 : 1;
  int bw = 7 * cell, bh = 9 * cell;  /* glyph plus a one-cell frame */
  int margin = (int)(0.03f * (float)(w < h ? w : h)) + 1;
  int x0 = fm->marker_corner & 1 ? w - margin - bw : margin;
  int y0 = fm->marker_corner & 2 ? h - margin - bh : margin;
  if (x0 < 0 || y0 < 0 || x0 + bw > w || y0 + bh > h) return;
  const uint8_t *g = left ? glyph_l : glyph_r;
  for (int y = 0; y < bh; y++) {
    for (int x = 0; x < bw; x++) {
      int gx = x / cell - 1, gy = y / cell - 1;
      int frame = x < cell / 2 + 1 || y < cell / 2 + 1 || x >= bw - cell / 2 - 1 || y >= bh - cell / 2 - 1;
      int on = gx >= 0 && gx < 5 && gy >= 0 && gy < 7 && (g[gy] >> (4 - gx) & 1);
      float *p = &img[(size_t)(y0 + y) * (size_t)w + (size_t)(x0 + x)];
      *p = on || frame ? 0.97f : 0.35f * *p;
    }
  }
}

/* Separable Gaussian blur with clamped borders. */
static void blur(float *img, float *tmp, int w, int h, float sigma) {
  if (sigma < 0.2f) return;
  float k[32];
  int r = (int)ceilf(2.5f * sigma);
  if (r > 15) r = 15;
  float sum = 0.0f;
  for (int i = -r; i <= r; i++) sum += k[i + r] = expf(-0.5f * (float)(i * i) / (sigma * sigma));
  for (int i = 0; i <= 2 * r; i++) k[i] /= sum;
  for (int y = 0; y < h; y++) {
    const float *src = img + (size_t)y * (size_t)w;
    for (int x = 0; x < w; x++) {
      float acc = 0.0f;
      for (int i = -r; i <= r; i++) {
        int xx = x + i < 0 ? 0 : x + i >= w ? w - 1 : x + i;
        acc += k[i + r] * src[xx];
      }
      tmp[(size_t)y * (size_t)w + (size_t)x] = acc;
    }
  }
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w; x++) {
      float acc = 0.0f;
      for (int i = -r; i <= r; i++) {
        int yy = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
        acc += k[i + r] * tmp[(size_t)yy * (size_t)w + (size_t)x];
      }
      img[(size_t)y * (size_t)w + (size_t)x] = acc;
    }
  }
}

void develop(float *soft, const float *bone, const float *lucent, const film *fm, int mirror, float *tmp,
             uint8_t *out) {
  int w = fm->w, h = fm->h;
  float cx0 = fm->col[0] * (float)w, cx1 = (1.0f - fm->col[1]) * (float)w;
  float cy0 = fm->col[2] * (float)h, cy1 = (1.0f - fm->col[3]) * (float)h;
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w; x++) {
      size_t i = (size_t)y * (size_t)w + (size_t)x;
      float l = lucent[i] > 1.0f ? 1.0f : lucent[i];
      float att = soft[i] + bone[i] * (1.0f - l);
      /* Film density is about linear in attenuation (log exposure) until it
       * saturates: tanh gives that toe-free, shouldered response. */
      float v = powf(tanhf(fm->exposure * att), fm->gamma) * fm->contrast;
      v += fm->bg + fm->grad_x * ((float)x / (float)w - 0.5f) + fm->grad_y * ((float)y / (float)h - 0.5f);
      if (fm->collimate && (x < cx0 || x >= cx1 || y < cy0 || y >= cy1)) v = fm->col_level;
      soft[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
  }
  if (fm->marker) draw_marker(soft, w, h, fm, mirror);
  blur(soft, tmp, w, h, fm->blur);
  rng nr;
  rng_seed(&nr, fm->noise_seed);
  size_t n = (size_t)w * (size_t)h;
  for (size_t i = 0; i < n; i++) {
    float v = soft[i];
    /* Quantum noise: standard deviation grows with the square root of the signal. */
    v += fm->noise * sqrtf((v > 0.0f ? v : 0.0f) + 0.02f) * (float)rng_normal(&nr);
    if (fm->channels == 1) {
      float q = v * 255.0f + 0.5f;
      out[i] = (uint8_t)(q < 0.0f ? 0.0f : q > 255.0f ? 255.0f : q);
    } else {
      for (int c = 0; c < 3; c++) {
        float q = v * fm->tint[c] * 255.0f + 0.5f;
        out[3 * i + (size_t)c] = (uint8_t)(q < 0.0f ? 0.0f : q > 255.0f ? 255.0f : q);
      }
    }
  }
}
