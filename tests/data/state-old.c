/* SPDX-License-Identifier: MIT */
/* Writes a snapshot of the big tree and traffic of tests/test_snapshot.c
   (tests/data/big.h) in the format of the library it is
   linked with. Each older format's sample was written by this program,
   built and run against the last commit that wrote that format:

     state-format1.bin  format 1, libobspam 1.0 to 1.2: 1.2.0 (git a57c5f4)
     state-format2.bin  format 2, 1.3 before the minute and day windows:
                        the commit that laid down their interface (4db2c08)
     state-format3.bin  format 3, 1.3 before resets and scripts' uids: the
                        commit that declared the panel functions (5ddb3bd)
     state-format4.bin  format 4, 1.3 and 1.4 before forwards and list
                        deliveries were kept apart: the commit that began
                        counting them in memory (d045e1c)

     git checkout COMMIT && cmake -S . -B build && cmake --build build &&
     cc -Iinclude tests/data/state-old.c -Lbuild -lobspam -o state-old &&
     ./state-old tests/data/state-formatN.bin

   test_snapshot.c's format_N_loads checks what a later engine makes of
   each. */
#include "writer.h"

#include "big.h"

int main(int argc, char **argv) {
  if (argc != 2)
    return 2;
  OK(obspam_engine_new(&e));
  {
    int line = 0, rc = big_tree_build(e, 0, &line);

    if (rc != OBSPAM_OK) {
      fprintf(stderr, "big.h line %d: %s\n", line, obspam_engine_errmsg(e));
      return 1;
    }
  }
  for (size_t i = 0; i < BIG_STEPS; i++) {
    obspam_message m = big_message(&big_traffic_steps[i]);

    decided(&m, big_traffic_steps[i].action, __LINE__);
  }
  OK(obspam_state_save(e, argv[1]));
  obspam_engine_free(e);
  return 0;
}
