/*
 * decompress.c — deltadct's C API in a small program: what a .ddct holds, then the fine-tune
 * rebuilt from it and its base, with progress, notes and errors as a program would handle them.
 *
 *   cc decompress.c $(pkg-config --cflags --libs deltadct) -o ddct-decompress
 *   ./ddct-decompress BASE.safetensors MODEL.ddct REBUILT.safetensors
 */
#include <stdio.h>

#include <deltadct.h>

static int progress(void *opaque, size_t done, size_t total, uint64_t bytes_done, uint64_t bytes_total,
                    const char *name)
{
    (void)opaque, (void)bytes_done, (void)bytes_total, (void)name;
    fprintf(stderr, "\r%zu / %zu tensors", done, total);
    return 0; /* nonzero would cancel */
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s BASE MODEL.ddct OUT.safetensors\n", argv[0]);
        return 2;
    }
    printf("deltadct %s\n", ddct_versionString());

    ddct_Info *info = NULL;
    char err[512];
    if (ddct_openInfo(&info, argv[2], err, sizeof err) != DDCT_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    size_t lossy = 0;
    for (size_t i = 0; i < ddct_Info_count(info); i++) lossy += ddct_Info_tensor(info, i)->lossy != 0;
    printf("%s: %zu tensors (%zu lossy), %llu bytes\n", argv[2], ddct_Info_count(info), lossy,
           (unsigned long long)ddct_Info_fileBytes(info));
    ddct_freeInfo(info);

    ddct_DCtx *d = ddct_createDCtx();
    if (!d) return 1;
    ddct_DCtx_setThreads(d, 0); /* all cores */
    ddct_DCtx_setProgress(d, progress, NULL);
    ddct_ErrorCode rc = ddct_decompressFile(d, argv[1], argv[2], argv[3], 1);
    fputc('\n', stderr);
    if (rc != DDCT_OK) fprintf(stderr, "%s: %s\n", ddct_getErrorName(rc), ddct_DCtx_getErrorMessage(d));
    for (size_t i = 0; i < ddct_DCtx_noteCount(d); i++) fprintf(stderr, "note: %s\n", ddct_DCtx_note(d, i));
    ddct_freeDCtx(d);
    if (rc == DDCT_OK) printf("%s written\n", argv[3]);
    return rc == DDCT_OK ? 0 : 1;
}
