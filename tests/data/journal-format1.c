/* SPDX-License-Identifier: MIT */
/* Writes tests/data/journal-format1.bin: a journal in format 1, the
   format of libobspam 1.3 before the minute and day windows, with no
   snapshot before it. It was built and run against the commit that laid
   down the windows' interface (git 4db2c08), the last that wrote format 1:

     cc -Iinclude tests/data/journal-format1.c -Lbuild -lobspam \
        -o journal-format1 && ./journal-format1 DIR &&
     cp DIR/state.journal tests/data/journal-format1.bin

   test_windows.c's journal_format_1_replays checks what a later engine
   makes of it. */
#include "writer.h"

/* A login's message from a network client, without a sender, as the
   program that wrote the sample sent it. */
static void login(const char *who, uint32_t rcpt, int64_t t, int action,
                  int line) {
  obspam_message m = OBSPAM_MESSAGE_INIT;

  m.sasl_username = who;
  m.client_address = "198.51.100.10";
  m.recipients = rcpt;
  m.time = t;
  decided(&m, action, line);
}
#define LOGIN(who, rcpt, t, action)                                            \
  login((who), (rcpt), (t), (action), __LINE__)

int main(int argc, char **argv) {
  char state[4096];

  if (argc != 2)
    return 2;
  snprintf(state, sizeof state, "%s/state", argv[1]);
  OK(obspam_engine_new(&e));
  OK(obspam_load_config_string(e, "subscription s\n"
                                  "domain d.example subscription=s\n"
                                  "mailbox a@d.example limit=2\n"
                                  "mailbox b@d.example\n"));
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  LOGIN("a@d.example", 2, T0, OBSPAM_ACCEPT);
  LOGIN("a@d.example", 1, T0 + 10, OBSPAM_REFUSE);
  LOGIN("b@d.example", 1, T0 + 20, OBSPAM_ACCEPT);
  OK(obspam_journal_close(e));
  obspam_engine_free(e);
  return 0;
}
