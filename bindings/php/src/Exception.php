<?php

// SPDX-License-Identifier: MIT

declare(strict_types=1);

namespace Obspam;

/**
 * A libobspam call failed. getCode() is the library's negative OBSPAM_E*
 * code (Engine::EINVAL, ...), getMessage() the engine's one-line message.
 */
class Exception extends \RuntimeException
{
}
