#include <stdio.h>
#include <math.h>
#include "fl_math.h"
/* Accuracy of fastloss's vectorisable elementary functions against libm /
 * long double, over dense grids: the bounds quoted in src_c/fl_math.h.
 * Build: cc -O2 -Isrc_c tests/c/test_math.c -lm && ./a.out (exit 1 on failure). */
static int fails = 0;
static void check(const char *what, double mx, double bound) {
    printf("%-14s max %.2f ulp (bound %.1f)\n", what, mx, bound);
    if (!(mx <= bound)) fails++;
}
int main(void){ double mx=0; double worst=0;
 for (double u=1e-300; u<1e10; u*=1.0001){ double a=fl_log1p_f64(u), b=log1p(u); double e=fabs(a-b)/ (nextafter(fabs(b),INFINITY)-fabs(b)); if(e>mx){mx=e;worst=u;} }
 check("log1p f64", mx, 2.5); (void)worst;
 if (!(isinf(fl_log1p_f64(INFINITY)) && isnan(fl_log1p_f64(NAN)) && fl_log1p_f64(0.0) == 0.0)) fails++;
 if (!(fl_exp_f32(-INFINITY) == 0.0f && isinf(fl_exp_f32(INFINITY)) && isnan(fl_exp_f32(NAN)))) fails++;
 if (!(fl_exp_f64(-INFINITY) == 0.0 && isinf(fl_exp_f64(INFINITY)) && isnan(fl_exp_f64(NAN)))) fails++;
 mx=0; for (float x=-103.f; x<88.f; x+=0.0007f){ float a=fl_exp_f32(x); float b=(float)exp((double)x); float e=fabsf(a-b)/(nextafterf(b,INFINITY)-b); if(e>mx){mx=e;worst=x;} }
 check("exp f32", mx, 1.5);
 mx=0; for (double x=-745; x<709; x+=0.00031){ double a=fl_exp_f64(x); long double b=expl((long double)x); double bd=(double)b; double e=fabs((double)((long double)a-b))/(nextafter(bd,INFINITY)-bd); if(e>mx){mx=e;worst=x;} }
 check("exp f64", mx, 1.5);
 mx=0; for (double u=0; u<=1; u+=1e-7){ double a=fl_log1p01_f64(u); long double b=log1pl((long double)u); double bd=(double)b; if(bd==0) continue; double e=fabs((double)((long double)a-b))/(nextafter(bd,INFINITY)-bd); if(e>mx){mx=e;worst=u;} }
 check("log1p01 f64", mx, 2.5);
 mx=0; for (float u=1e-30f; u<=1; u*=1.00001f){ float a=fl_log1p01_f32(u); double b=log1p((double)u); float bf=(float)b; float e=(float)fabs(a-b)/(nextafterf(bf,INFINITY)-bf); if(e>mx){mx=e;worst=u;} }
 check("log1p01 f32", mx, 2.5);
 mx=0; for (double v=1e-300; v<1e300; v*=1.0007){ double a=fl_log_f64(v); long double b=logl((long double)v); double bd=(double)b; if(bd==0) continue; double e=fabs((double)((long double)a-b))/fabs(nextafter(bd,INFINITY)-bd); if(e>mx){mx=e;worst=v;} }
 for (double v=4.9e-324; v<2.3e-308; v*=3.0){ double a=fl_log_f64(v); long double b=logl((long double)v); double bd=(double)b; double e=fabs((double)((long double)a-b))/fabs(nextafter(bd,INFINITY)-bd); if(e>mx){mx=e;worst=v;} }
 /* and densely around 1, where log is small (its worst case, ~2 ulp near 0.706) */
 for (double v=0.5; v<2.0; v+=3e-7){ double a=fl_log_f64(v); long double b=logl((long double)v); double bd=(double)b; if(bd==0) continue; double e=fabs((double)((long double)a-b))/fabs(nextafter(bd,INFINITY)-bd); if(e>mx){mx=e;worst=v;} }
 check("log f64", mx, 2.5);
 if (!(isinf(fl_log_f64(-0.0)) && fl_log_f64(-0.0) < 0 && isnan(fl_log_f64(-INFINITY)) && fl_log_f64(1.0) == 0.0)) fails++;
 if (!(isinf(fl_log_f64(0.0)) && fl_log_f64(0.0) < 0 && isinf(fl_log_f64(INFINITY)) && isnan(fl_log_f64(-1.0)) && isnan(fl_log_f64(NAN)))) fails++;
 /* the x <= 0 exps equal the general ones bit for bit on [-inf, 0] (every float
  * in [-110, 0], doubles on a grid), and a NaN argument gives NaN */
 { long bad = 0; float x; double d;
   for (x = -110.0f; x <= 0.0f; x = nextafterf(x, 1.0f)) bad += fl_expn_f32(x) != fl_exp_f32(x);
   bad += fl_expn_f32(-INFINITY) != 0.0f || fl_expn_f32(-0.0f) != 1.0f || !isnan(fl_expn_f32(NAN));
   bad += fl_expn_f32(-1e30f) != fl_exp_f32(-1e30f);
   for (d = -800.0; d <= 0.0; d += 0.000123) bad += fl_expn_f64(d) != fl_exp_f64(d);
   bad += fl_expn_f64(-INFINITY) != 0.0 || fl_expn_f64(-0.0) != 1.0 || !isnan(fl_expn_f64(NAN));
   bad += fl_expn_f64(-1e300) != fl_exp_f64(-1e300);
   printf("%-14s %ld differences from exp\n", "expn f32/f64", bad);
   if (bad) fails++; }
 printf("%s\n", fails ? "FAILED" : "ok");
 return fails != 0;
}
