/* SPDX-License-Identifier: MIT */
/* Writes a snapshot of the big tree and traffic of tests/test_snapshot.c
   (big_tree(0) and big_traffic()) in the format of the library it is
   linked with. Each older format's sample was written by this program,
   built and run against the last commit that wrote that format:

     state-format1.bin  format 1, libobspam 1.0 to 1.2: 1.2.0 (git a57c5f4)
     state-format2.bin  format 2, 1.3 before the minute and day windows:
                        the commit that laid down their interface (4db2c08)
     state-format3.bin  format 3, 1.3 before resets and scripts' uids: the
                        commit that declared the panel functions (5ddb3bd)

     git checkout COMMIT && cmake -S . -B build && cmake --build build &&
     cc -Iinclude tests/data/state-old.c -Lbuild -lobspam -o state-old &&
     ./state-old tests/data/state-formatN.bin

   test_snapshot.c's format_N_loads checks what a later engine makes of
   each. */
#include "writer.h"

#define H1 (T0 + 3600)
#define H2 (T0 + 2 * 3600)

#define LOGIN(who, rcpt, t, action)                                            \
  decide(0, (who), (who), -1, NULL, NULL, (rcpt), (t), (action), __LINE__)
#define RUN(uid, hint, script, rcpt, t, action)                                \
  decide(OBSPAM_MSG_SCRIPT, NULL, NULL, (uid), (hint), (script), (rcpt), (t),  \
         (action), __LINE__)

int main(int argc, char **argv) {
  if (argc != 2)
    return 2;
  OK(obspam_engine_new(&e));
  OK(obspam_add(e, OBSPAM_PLAN, "p1", NULL));
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "s1", "p1"));
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "s2", NULL));
  OK(obspam_set_uid(e, "s1", 1001));
  OK(obspam_set_uid(e, "s2", 1002));
  OK(obspam_set_contact(e, "s1", "ops@s1.example"));
  OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "s2", 0));
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "s2", OBSPAM_SUBSCRIPTION, 10));
  OK(obspam_add(e, OBSPAM_DOMAIN, "d1.example", "s1"));
  OK(obspam_add(e, OBSPAM_DOMAIN, "d2.example", "s1"));
  OK(obspam_add(e, OBSPAM_DOMAIN, "d3.example", "s2"));
  OK(obspam_add(e, OBSPAM_MAILBOX, "a@d1.example", NULL));
  OK(obspam_add(e, OBSPAM_MAILBOX, "b@d1.example", NULL));
  OK(obspam_add(e, OBSPAM_MAILBOX, "c@d2.example", NULL));
  OK(obspam_add(e, OBSPAM_MAILBOX, "e@d3.example", NULL));
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "a@d1.example", OBSPAM_MAILBOX, 3));
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "c@d2.example", OBSPAM_MAILBOX, 1));
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "e@d3.example", OBSPAM_MAILBOX, 2));
  /* H0 */
  LOGIN("a@d1.example", 3, T0 + 60, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, T0 + 120, OBSPAM_REFUSE);
  LOGIN("a@d1.example", 1, T0 + 180, OBSPAM_REFUSE);
  LOGIN("b@d1.example", 5, T0 + 200, OBSPAM_ACCEPT);
  LOGIN("c@d2.example", 1, T0 + 300, OBSPAM_ACCEPT);
  LOGIN("c@d2.example", 1, T0 + 400, OBSPAM_REFUSE);
  RUN(1001, "d2.example", "/var/www/S1/index.php", 2, T0 + 500, OBSPAM_ACCEPT);
  RUN(1002, NULL, "/home/s2/spam.pl", 1, T0 + 600, OBSPAM_REFUSE);
  /* H1 */
  LOGIN("a@d1.example", 2, H1 + 60, OBSPAM_ACCEPT);
  LOGIN("e@d3.example", 2, H1 + 100, OBSPAM_ACCEPT);
  LOGIN("e@d3.example", 1, H1 + 200, OBSPAM_REFUSE);
  /* H2 */
  LOGIN("a@d1.example", 1, H2 + 30, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 3, H2 + 90, OBSPAM_REFUSE);
  LOGIN("b@d1.example", 4, H2 + 1500, OBSPAM_ACCEPT);
  LOGIN("c@d2.example", 1, T0 + 9000, OBSPAM_ACCEPT);
  OK(obspam_state_save(e, argv[1]));
  obspam_engine_free(e);
  return 0;
}
