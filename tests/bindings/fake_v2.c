/*
 * A stand-in for a libobspam of another major version (2.0.0), which the
 * bindings must refuse. Built as a shared library by run.sh; it has only
 * the version functions, and the bindings must look at them first.
 */
unsigned int obspam_version(void);
const char *obspam_version_string(void);

unsigned int obspam_version(void) { return 2u << 16; }
const char *obspam_version_string(void) { return "2.0.0"; }
