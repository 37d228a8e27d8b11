"""Local BI layer: the serving extract (`extract`), its queries (`queries`), the Streamlit
app (`app`) and the process that serves it (`server`)."""
