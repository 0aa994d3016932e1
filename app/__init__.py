"""Front ends: the `ncodec` command line and the Gradio web app. Only parse and call ncodec.video / ncodec.codec."""
