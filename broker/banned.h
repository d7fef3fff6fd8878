/*
 * banned.h: functions that are too easy to misuse. Every .c file of the project includes it
 * after its system headers (as git does), so a use is a compile error, not a review note.
 */
#ifndef BRK_BANNED_H
#define BRK_BANNED_H

#define BRK_BANNED(func) sorry_##func##_is_a_banned_function

#undef sprintf
#define sprintf(...) BRK_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BRK_BANNED(vsprintf)
#undef strcpy
#define strcpy(x, y) BRK_BANNED(strcpy)
#undef strcat
#define strcat(x, y) BRK_BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BRK_BANNED(strncpy)
#undef strtok
#define strtok(x, y) BRK_BANNED(strtok)
#undef atoi
#define atoi(x) BRK_BANNED(atoi)
#undef gmtime
#define gmtime(x) BRK_BANNED(gmtime)
#undef localtime
#define localtime(x) BRK_BANNED(localtime)

#endif
