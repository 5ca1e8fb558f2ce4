"""The one error type for bad user input, shared by every layer of the pack."""


class InputError(ValueError):
    """Bad input to a stage, reported with the name of the input at fault.

    ``str(error)`` reads ``"<input>: <what is wrong and what would be valid>"``,
    which ComfyUI shows under the node that raised it.
    """

    def __init__(self, input_name: str, message: str):
        self.input_name = input_name
        super().__init__(f"{input_name}: {message}")
