/* SPDX-License-Identifier: MIT */
/* What obspam-milter reads from a message to tell who sent it: the client
   of the connection, Postfix pickup's Received: header, PHP's
   X-PHP-Originating-Script: header and the virtual host in a script's
   path. Pure functions on strings: no I/O, no allocation, no libmilter,
   so that tests/daemons/milter_parse.c drives them directly.

   Why these sources can be trusted is explained in obspam-milter(8),
   "Local submissions"; in short: Postfix's cleanup(8) tells a submission
   through sendmail(1)/pickup(8) apart by its emulated client (127.0.0.1,
   port 0), and the submitter's uid comes from pickup(8)'s Received:
   header, copied by a header_checks rule into a header that names the
   message's queue ID (see SUB_PICKUP_HEADER). */
#ifndef OBSPAM_MILTER_SUBMISSION_H
#define OBSPAM_MILTER_SUBMISSION_H

#include <stddef.h>
#include <stdint.h>

/* Whether a connection is Postfix cleanup(8)'s stand-in for a local
   submission (sendmail(1) -> postdrop -> pickup(8), or qmqpd without a
   client): cleanup "connects" from 127.0.0.1 with port 0, which no real
   TCP client can have. addr is the client's address as text (NULL or ""
   count as local as well: a milter connection without an address), port
   its port, or -1 when the MTA did not say (then only the missing address
   makes it local). */
int sub_is_local_client(const char *addr, long port);

/* The client address of {client_addr} as an address the library reads.
   Postfix sends a bare address; Sendmail writes an IPv6 client as
   "IPv6:2001:db8::1" and may bracket either kind, as SMTP address
   literals are ("[203.0.113.7]", "[IPv6:2001:db8::1]"). Those forms are
   unwrapped into out; anything else is copied as it is (and, when it is
   no address, decided as an unknown client would be). out has size
   bytes; the copy is cut to fit. */
void sub_client_address(const char *in, char *out, size_t size);

/* The header that carries the uid of a local submission to the milter,
   and how to read it.

   pickup(8) writes the submitter's uid into the first header of the
   message, "Received: by HOST (Postfix, from userid N)\n\tid QUEUEID; DATE",
   but Postfix never shows its own Received: header to a milter (Sendmail
   compatibility: milter8.c skips it), and no macro holds the uid. A
   header_checks(5) rule copies it into a header that Postfix does show:

     /^Received: by [^ ]+ \([^,)]+, from userid ([0-9]+)\)[[:space:]]+id
      ([0-9A-Za-z]+);/ PREPEND X-Obspam-Pickup: uid=$1 id=$2

   PREPEND puts it above pickup's header, so it comes before anything the
   script wrote; and it names the queue ID, which a script cannot know in
   advance: a copy the script forges names another ID and is ignored. */
#define SUB_PICKUP_HEADER "X-Obspam-Pickup"

/* Parses the value of that header, "uid=N id=QUEUEID" (blanks around it
   allowed). N is 0 .. 4294967295; QUEUEID is letters and digits, at most
   qid_size - 1 of them, copied into qid. Returns the uid, or -1 when the
   value has another form. */
int64_t sub_pickup_marker(const char *value, char *qid, size_t qid_size);

/* Parses the value of an X-PHP-Originating-Script: header, "UID:FILE"
   (PHP's mail() writes "33:contact.php"; some builds a whole path). Leading
   and trailing blanks are dropped. On success returns the uid and points
   *file at FILE inside value with its length in *file_len (not
   NUL-terminated: trailing blanks are left out). Returns -1 when the value
   has another form (no digits, no ':', an empty FILE). */
int64_t sub_php_script(const char *value, const char **file, size_t *file_len);

/* ---- virtual host patterns ------------------------------------------------

   A pattern such as "/var/www/vhosts/%d/" tells where the domain of a
   virtual host stands in the path of its scripts:
     - "%d" matches the domain: one or more characters other than '/';
     - "*" matches one or more characters other than '/': a directory name
       that is not the domain, such as the user in DirectAdmin's
       /home/USER/domains/DOMAIN/ (the pattern "/home/" "*" "/domains/%d/");
     - "%%" matches a '%'; every other character matches itself (case
       matters);
     - the pattern matches the beginning of the path, up to a '/' or to the
       end of the path: "/var/www/%d" takes "example.com" from
       "/var/www/example.com/index.php" and from "/var/www/example.com",
       never "exam" from it;
     - a pattern starts with '/', holds exactly one "%d" and at most 8
       wildcards, and is at most SUB_PATTERN_MAX bytes. */
#define SUB_PATTERN_MAX 1024

/* Checks a pattern; 0, or -1 with the reason in err ("the pattern holds
   no %d", ...). */
int sub_pattern_check(const char *pattern, char *err, size_t err_size);

/* Matches path (len bytes, need not be NUL-terminated) against a checked
   pattern. On a match copies the domain, NUL-terminated, into domain and
   returns 1; returns 0 when the path does not match or the domain does not
   fit in domain_size. */
int sub_pattern_match(const char *pattern, const char *path, size_t len,
                      char *domain, size_t domain_size);

/* The envelope address of a MAIL FROM or RCPT TO argument, as Postfix
   reads and canonicalizes it before it looks it up (virtual_alias_maps)
   or sends it on: blanks around it and one pair of angle brackets are
   removed ("<a@b>" -> "a@b", "<>" -> ""), and so are a source route
   ("<@a,@b:u@d>"), comments, blanks, quotes and backslashes outside a
   quoted string ("<\"u\"@d>" -> "u@d"), one dot that ends the domain
   ("u@d." -> "u@d"); an address without '@' has its bang path
   ("d!u") or percent hack ("u%d") turned into "u@d". The milter is given
   the client's text, and a forward or sender must be known by the
   address the MTA uses. Copies at most size - 1 bytes into out
   (NUL-terminated) and returns the length of the whole address (as
   snprintf does, so that a caller can tell a cut one); an address longer
   than 512 bytes is copied cut, not rewritten. */
size_t sub_envelope_address(const char *arg, char *out, size_t size);

#endif
