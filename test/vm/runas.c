// runas UID COMMAND [ARGS...]: drop to UID (and GID UID, no supplementary groups) and exec
// COMMAND. The test image's busybox has no su/chpst/setuidgid and its setpriv cannot change ids;
// a uid change from 0 clears the capability sets, so the command runs without CAP_SYS_MODULE.
// Built statically by test/vm/harness.ts with the host's gcc.
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: runas UID COMMAND [ARGS...]\n");
		return 2;
	}
	uid_t id = (uid_t)strtoul(argv[1], NULL, 10);
	if (setgroups(0, NULL) || setgid(id) || setuid(id)) {
		perror("runas");
		return 2;
	}
	execvp(argv[2], argv + 2);
	perror("runas: exec");
	return 127;
}
