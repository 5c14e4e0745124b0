// SPDX-License-Identifier: GPL-2.0
/*
 * param_printer: a module whose only job is to show what the kernel made of its parameters.
 * Every parameter is 0444, so it can be read back under /sys/module/param_printer/parameters/,
 * and init prints them all with pr_info. kmod-ts's real-kernel suite (test/vm/) loads it with
 * each parameter type, including a charp whose value has spaces (kmod's quoting rule).
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static int count = 1;
module_param(count, int, 0444);
MODULE_PARM_DESC(count, "an int");

static bool verbose;
module_param(verbose, bool, 0444);
MODULE_PARM_DESC(verbose, "a bool");

static char *name = "world";
module_param(name, charp, 0444);
MODULE_PARM_DESC(name, "a charp");

static int values[8];
static int nvalues;
module_param_array(values, int, &nvalues, 0444);
MODULE_PARM_DESC(values, "an int array (up to 8)");

static char *greeting = "hello";
module_param(greeting, charp, 0444);
MODULE_PARM_DESC(greeting, "a charp meant for values with spaces");

static int __init param_printer_init(void)
{
	int i;

	pr_info("param_printer: count=%d verbose=%c name=%s greeting=[%s] nvalues=%d\n",
		count, verbose ? 'Y' : 'N', name, greeting, nvalues);
	for (i = 0; i < nvalues; i++)
		pr_info("param_printer: values[%d]=%d\n", i, values[i]);
	return 0;
}

static void __exit param_printer_exit(void)
{
	pr_info("param_printer: unloaded\n");
}

module_init(param_printer_init);
module_exit(param_printer_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Print and expose module parameters (kmod-ts real-kernel tests)");
MODULE_AUTHOR("kmod-ts");
