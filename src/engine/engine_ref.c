/* Plain-C reference engine (tests only). */
#include "engine/engine.h"
