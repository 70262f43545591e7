"""Two small source documents shared by the Haystack adapter tests."""

BERLIN = (
    "Berlin is the capital of Germany. It hosts several universities and many museums. "
    "The wall divided the city until 1989."
)
KYOTO = "Kyoto was the capital of Japan for a thousand years. It is famous for its temples. Many tourists visit."
