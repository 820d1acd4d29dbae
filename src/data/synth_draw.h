/* Internal to the phantom generator (synth_*.c): a scene of X-ray attenuating
 * objects in centimetre coordinates, the anatomy and finding builders that
 * fill it, and the rasteriser and "film" that turn it into 8-bit pixels. */
#ifndef MSKX_DATA_SYNTH_DRAW_H
#define MSKX_DATA_SYNTH_DRAW_H
#include <stdint.h>
#include "core/rng.h"

#define OBJ_MAX_SHAPES 8
#define POLY_MAX 8
#define SCENE_MAX_OBJ 192
#define SCENE_MAX_BONES 24

enum shape_kind { SHAPE_CAPSULE, SHAPE_ELLIPSE, SHAPE_POLYGON };

/* Layers combine differently: soft tissue envelopes by maximum (so overlapping
 * envelopes leave no seams), then metal added on top; bone by sum (overlapping
 * bones look denser, as on film); lucencies add up into a [0,1] mask that
 * removes that share of the bone attenuation. */
enum layer { LAYER_SOFT, LAYER_METAL, LAYER_BONE, LAYER_LUCENT };

/* PROFILE_SOLID: projected thickness of the 3-D solid (sqrt profile), in units
 * of the scene's reference radius; PROFILE_FLAT: coverage in [0,1] with a
 * soft edge of `feather` cm, times mu. */
enum profile { PROFILE_SOLID, PROFILE_FLAT };

typedef struct shape {
  int kind;
  float k;                        /* inner (medulla) size / outer size; 0: no inner */
  float flat;                     /* thickness factor: < 1 for flattened cross-sections */
  float ax, ay, bx, by, ra, rb;   /* capsule: axis a-b, radii at a and b */
  float cx, cy, sa, sb, ang, depth; /* ellipse: centre, semi-axes (sa along ang), half thickness */
  float cos_ang, sin_ang;         /* of ang, set when mapped to pixels */
  int nv;                         /* polygon: vertices; depth = plateau, ra = ramp width */
  float vx[POLY_MAX], vy[POLY_MAX];
} shape;

/* A union of shapes (thickness = max over shapes), optionally cut by a
 * half-plane: kept where (p - clip point) . clip normal >= 0. */
typedef struct object {
  int layer, profile, core;  /* core: used to fit the anatomy into the frame */
  float mu, mu_inner;        /* value = mu*outer + mu_inner*inner */
  float feather;
  int clip;
  float clip_px, clip_py, clip_nx, clip_ny;
  int nshapes;
  shape s[OBJ_MAX_SHAPES];
} object;

/* A bone that can carry a finding: its object and axis a-m-b (two straight
 * pieces), shaft radii at a and b, and the stretch [tmin, tmax] where findings go. */
typedef struct bone_ref {
  int obj;
  float ax, ay, mx, my, bx, by, ra, rb, tmin, tmax;
} bone_ref;

typedef struct scene {
  int nobj;
  object o[SCENE_MAX_OBJ];
  int nbones;
  bone_ref bones[SCENE_MAX_BONES];
  float ref;        /* reference radius (cm): solid path lengths are measured in it */
  float mu_cortex, mu_medulla, mu_soft, k_shaft;
  int mirror;       /* left side: mirrored, marker "L" */
  float fscale;     /* finding size/contrast multiplier (synth_config.finding_scale) */
} scene;

/* Pose: canonical cm -> pixels. p' = M (squash*mirror*x, y) + t. */
typedef struct xform {
  float m00, m01, m10, m11, tx, ty;
  float s;          /* pixels per cm (isotropic part, for radii) */
  float sx;         /* x factor before rotation: squash, negative when mirrored */
} xform;

/* Everything about the film that is not anatomy. */
typedef struct film {
  int w, h, channels;
  float exposure, gamma, contrast, bg, grad_x, grad_y, blur, noise;
  int collimate;
  float col[4], col_level;  /* kept field: fractions of width/height from each side */
  int marker, marker_corner;
  float marker_size;
  float tint[3];
  uint64_t noise_seed;
} film;

/* Scene building (synth_draw.c). obj_new returns NULL when the scene is full;
 * shape adders ignore a NULL object and a full object. */
object *obj_new(scene *sc, int layer, int profile, float mu, float mu_inner, int core);
void obj_capsule(object *o, float ax, float ay, float bx, float by, float ra, float rb, float k);
/* A soft-tissue limb segment: a capsule whose cross-section is flattened to
 * `flat` of its width, as forearms and wrists are in AP projection. */
void obj_limb(object *o, float ax, float ay, float bx, float by, float ra, float rb, float flat);
void obj_ellipse(object *o, float cx, float cy, float sa, float sb, float ang_deg, float depth, float k);
void obj_polygon(object *o, const float *xy, int nv, float depth, float ramp);
/* A long bone occupying a..b along its axis, optionally bowed through m
 * (m NULL: straight): shaft radii ra, rb; end blobs at a and b with
 * half-width w and half-length l (0: none). Registers it for findings when
 * tmax > tmin. Returns the object or NULL. */
typedef struct long_bone {
  float ax, ay, bx, by;
  const float *m;
  float ra, rb, wa, la, wb, lb;
  float tmin, tmax;
} long_bone;
object *add_long_bone(scene *sc, const long_bone *b, int core);
/* Position and unit tangent along a registered bone's axis at t in [0,1]. */
void bone_point(const bone_ref *b, float t, float *px, float *py, float *ux, float *uy, float *r);
/* Longest side of the core objects' bounding box (cm): findings on a long,
 * thin anatomy need a size floor relative to it to survive downscaling. */
float scene_core_span(const scene *sc);
/* Moves an object rigidly: rotation by ang (radians) about (ox, oy), then (dx, dy). */
void obj_move(object *o, float ox, float oy, float ang, float dx, float dy);
float lerpf(float a, float b, float t);
float unif(rng *r, float lo, float hi);

/* Anatomy (synth_parts.c): fills sc for part from the study stream. */
void build_anatomy(scene *sc, int part, rng *r);
/* Findings (synth_findings.c): adds the finding drawn from the study stream
 * (geometry) and the view stream vr (per-view variation). Returns the
 * finding's extent as a centre and radius in cm for its bounding box. */
void add_finding(scene *sc, int finding, rng *r, rng *vr, float *cx, float *cy, float *radius);

/* Fits the core objects into a w x h frame: rotation theta, squash, fill in
 * (0,1], offset fractions ox, oy in [-0.5, 0.5] of the slack. core_px gets
 * the core's bounding box in pixels (x0, y0, x1, y1). */
void fit_pose(const scene *sc, int w, int h, float theta, float squash, float fill, float ox, float oy,
              xform *xf, float *core_px);
void xform_point(const xform *xf, float x, float y, float *ox, float *oy);
/* Rasterises the scene into three w*h float planes (zeroed by the caller). */
void render_scene(const scene *sc, const xform *xf, int w, int h, float *soft, float *bone, float *lucent);
/* Film response, marker, blur and noise: writes w*h*channels bytes. tmp is
 * a w*h float scratch. */
void develop(float *soft, const float *bone, const float *lucent, const film *fm, int mirror, float *tmp,
             uint8_t *out);

#endif
